"""`tracker search`: full-text search over changes and the current text of every source."""

from __future__ import annotations

import typer

from tracker.cli.app import app, check_range, emit_json, fail, iso, parse_since, parse_until, session


@app.command("search")
def search_cmd(query: str = typer.Argument(..., help='words and "quoted phrases", all of which must match'),
               kind: str = typer.Option(None, "--kind", help="change or source (default: both)"),
               source: str = typer.Option(None, "--source", help="only this source id"),
               since: str = typer.Option(None, "--since", help="at or after this ISO 8601 date or time"),
               until: str = typer.Option(None, "--until", help="before this ISO 8601 date (its end) or time"),
               limit: int = typer.Option(20, "--limit", min=1, max=200, help="at most N results"),
               as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """Search what changes inserted or deleted (and their sections) and sources' current text.

    Example: tracker search '"repeat infringer" strike' --kind change --since 2026-11-01
    """
    from tracker.store.models import Source
    from tracker.store.search import HIT_END, HIT_START, KINDS, SearchFilters, pending_count, search, terms

    if kind is not None and kind not in KINDS:
        fail(f"--kind must be change or source, not {kind!r}")
    if not terms(query):
        fail(f"the query {query!r} holds no words to search for")
    after, before = parse_since(since), parse_until(until)
    check_range(after, before)
    with session() as s:
        if source and s.get(Source, source) is None:
            fail(f"unknown source id {source!r} (see `tracker sources list`)")
        if (queued := pending_count(s)) >= 100:
            # A crawl leaves new texts for the index (the service takes them in after each crawl) and the
            # search below takes in what is left; a long backlog takes a while, so say what the wait is.
            typer.echo(f"indexing {queued} new source texts for search first…", err=True)
        hits = search(s, query, filters=SearchFilters(kind=kind or "", source=source or "", since=after,
                                                       until=before), limit=limit)
    if as_json:
        emit_json([h.to_json() for h in hits])
        return
    if not hits:
        typer.echo("nothing matches")
        return
    for h in hits:
        what = f"change #{h.ref} in {h.source_id}" if h.kind == "change" else f"{h.source_id} (current text)"
        typer.echo(f"{what}  {iso(h.at)}")
        snippet = " ".join(h.snippet.replace(HIT_START, "[").replace(HIT_END, "]").split())
        typer.echo(f"    {snippet[:300]}")
