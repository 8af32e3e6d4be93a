"""The local stack: the database stack alone on the Docker engine next to the program (design §9.3).
The package itself imports nothing (`composition` does).
"""
