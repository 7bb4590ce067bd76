"""Adapters: the services' ports built on the repositories and the database infrastructure.

Imports point down only: adapters -> repositories -> db (pool, executor,
listener, models); nothing in `server.db` or `server.repositories` imports
from here, and `server.auth` imports neither.
"""
