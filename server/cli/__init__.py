"""`python -m server <command>`: serve, and the operator's data commands.

`main.py` parses the command line and maps failures to exit codes; each other
module is one group of commands (`schema`, `seed`, `backup`, `probe`,
`edge_config`) built on `server.db` and `server.edge`.
"""
