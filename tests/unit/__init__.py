"""Unit tests: no database, no network, no subprocess."""
