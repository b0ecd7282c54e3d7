"""Checking a source: pure per-kind parsing, bytes in, blocks or entries out (no database, no network)."""
