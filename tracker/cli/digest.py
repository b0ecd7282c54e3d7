"""`tracker digest`: preview or send the daily digest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tracker.cli.app import EXIT_FAILURES, app, engine, fail, parse_since, settings


@app.command("digest")
def digest(
    send: Annotated[bool, typer.Option("--send", help="send the digests by SMTP and remember what was sent")] = False,
    preview: Annotated[Path | None, typer.Option("--preview", metavar="DIR", file_okay=False,
                                                 help="write .html, .txt and .eml per recipient into DIR")] = None,
    since: Annotated[str | None, typer.Option("--since", help="re-send everything since this ISO 8601 time, "
                                                              "delivered or not")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", metavar="EMAIL",
                                                 help="only this recipient (repeatable)")] = None,
) -> None:
    """Build the digest for every recipient: --preview DIR writes files and sends nothing, --send mails it.

    Each change and impact is sent to a recipient once; a failed delivery is retried on the next run.
    Exit 3 when some recipients could not be sent to.
    """
    from tracker.digest import DigestError, run_digest

    if not send and preview is None:
        fail("say what to do: --preview DIR (write files, send nothing) or --send (mail the digests)")
    after = parse_since(since)
    s = settings()
    eng = engine()
    try:
        run = run_digest(engine=eng, settings=s, send=send, preview_dir=preview, since=after, to=to or None)
    except DigestError as exc:
        fail(str(exc))
    finally:
        eng.dispose()
    for path in run.previews:
        typer.echo(f"wrote {path}")
    typer.echo(run.summary())
    if run.failed:
        raise typer.Exit(EXIT_FAILURES)
