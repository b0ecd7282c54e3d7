"""Checking a source: the extractors of each kind of document (pure functions on bytes)."""
