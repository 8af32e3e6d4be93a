"""GCP: one package per cloud (design §9.2). The package itself imports nothing, so reading one of its
plain modules (settings, mocks) does not load the GCP SDK; `builders` does.
"""
