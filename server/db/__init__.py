"""PostgreSQL infrastructure: schema (models), pool, executor, LISTEN connection, embedded server, migrations.

Nothing here imports repositories, services or adapters; the unit of work,
the change feed and the revocation cache are adapters (`server.adapters`).
"""
