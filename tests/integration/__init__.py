"""Integration tests: the real database (SQLite, PostgreSQL when configured), local servers."""
