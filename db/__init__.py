"""Persistence: tables, engine and sessions, Alembic migrations. Knows nothing of services or bot."""
