"""Pure per-kind parsing for checks: bytes in, blocks or entries out (no database, no network)."""
