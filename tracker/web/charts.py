"""Server-rendered SVG bar charts: no script, no CDN, nothing the page's CSP would have to allow.

Each chart is horizontal grouped bars (one row per label, one bar per series) so long team and
SOP names fit; every text is XML-escaped here, and the page shows the same numbers in a table.
Colours come from classes the stylesheet defines (.series-0 …), and each series has a legend in
words, so colour is never the only signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from markupsafe import Markup

ROW, BAR, LEFT, WIDTH, TOP = 26, 9, 200, 640, 30
MAX_ROWS = 60  # a chart of more rows is cut (the table beside it has them all)


@dataclass
class Series:
    """One set of bars: a name for the legend and one value per label (None: no bar)."""

    name: str
    values: Sequence[float | None]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.1f}"


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, unit: str = "") -> Markup:
    """An inline SVG: a row per label with a bar per series, scaled to the largest value."""
    labels = list(labels)[:MAX_ROWS]
    peak = max((v for s in series for v in s.values[:len(labels)] if v is not None), default=0) or 1
    height = TOP + ROW * max(1, len(labels)) + 24
    span = WIDTH - LEFT - 70
    out = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, s in enumerate(series):
        x = LEFT + i * 150
        out.append(f'<rect class="series-{i}" x="{x}" y="6" width="10" height="10"/>'
                   f'<text class="legend" x="{x + 14}" y="15">{escape(s.name)}</text>')
    for row, label in enumerate(labels):
        y = TOP + row * ROW
        out.append(f'<text class="label" x="{LEFT - 6}" y="{y + ROW / 2 + 4:.0f}" text-anchor="end">'
                   f'{escape(label[:32])}</text>')
        for i, s in enumerate(series):
            value = s.values[row] if row < len(s.values) else None
            if not value:
                continue  # no bar and no "0" for nothing (the table says 0)
            w = max(1.0, span * value / peak)
            by = y + 3 + i * (BAR + 1)
            out.append(f'<rect class="series-{i}" x="{LEFT}" y="{by}" width="{w:.1f}" height="{BAR}">'
                       f'<title>{escape(s.name)}: {_fmt(value)}{escape(unit)}</title></rect>'
                       f'<text class="value" x="{LEFT + w + 4:.1f}" y="{by + BAR - 1}">{_fmt(value)}</text>')
    if not labels:
        out.append(f'<text class="label" x="{LEFT}" y="{TOP + 14}">no data in this period</text>')
    out.append("</svg>")
    return Markup("".join(out))
