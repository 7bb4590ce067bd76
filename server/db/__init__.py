"""PostgreSQL: schema, connection pool, unit of work, embedded server and migrations."""
