"""Azure: the builders, settings profile and mocks of an Azure stack (design §9.8)."""
