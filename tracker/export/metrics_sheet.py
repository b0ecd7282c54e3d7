"""The XLSX export's `metrics` sheet: the SLA page's figures for the export's period and team.

One sheet with a `table` column (teams, sops, sources, weeks) in front of each table's cells, so
one sheet holds the four tables of /metrics; CSV and JSON Lines exports have no metrics table
(`tracker metrics --json` gives the same figures).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from tracker.export.formats import Column, ExportWriter
from tracker.impacts.metrics import TABLES, compute, table

COLUMNS: tuple[Column, ...] = (
    Column("table", "text", 10, "teams, sops, sources or weeks: which table of /metrics the row is from"),
    *(Column(f"c{i}", "text", 18 if i else 24, "a cell of that table; its header row names it") for i in range(8)),
)


def write_metrics_sheet(*, writer: ExportWriter, session: Session, start: datetime, end: datetime,
                        team: str | None) -> int:
    """Write the metrics sheet; returns its rows (each table's header row included)."""
    m = compute(session=session, since=start, until=end, team=team or "")
    sink = writer.table("metrics", COLUMNS)
    n = 0
    for name in TABLES:
        header, rows = table(m, name)
        for cells in [header, *rows]:
            padded = [*cells, *[""] * (8 - len(cells))][:8]
            sink.write((name, *padded))
            n += 1
    sink.close()
    return n
