"""Exporting the audit trail: run, the writers and their registry FORMATS, the verifiable manifest."""

from tracker.export.formats import FORMATS

__all__ = ["FORMATS"]
