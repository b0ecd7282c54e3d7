"""Exporting the audit trail: run, the CSV/JSONL/XLSX writers and the verifiable manifest."""
