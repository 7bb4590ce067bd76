"""Repositories: SQL on the unit of work's psycopg connection, rows mapped to domain types."""
