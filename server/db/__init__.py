"""PostgreSQL infrastructure: schema, pool, executor, LISTEN connection, embedded server.

Nothing here imports repositories, services or adapters; the unit of work,
the change feed and the revocation cache are adapters (`server.adapters`).
"""
