"""The database: engine and sessions, the SQLModel tables, Alembic migrations and locks."""
