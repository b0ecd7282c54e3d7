"""`tracker digest`: preview or send the daily digest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tracker.cli.app import EXIT_FAILURES, app, engine, fail, parse_since, settings

# Another run holds the send lease: nothing was done, and running again later is the fix (not a
# usage error, which needs the command or settings changed, nor a partial failure: nothing was tried).
EXIT_BUSY = 4


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
    One sending run at a time per database: while another (the service's, or someone's --send) is
    sending, this one sends nothing, names it, and exits 4.

    Exit 0 sent (or nothing to send), 2 usage or configuration error, 3 some recipients could not be
    sent to (or the run stopped early after losing its lease), 4 another digest run is sending.

    Example: tracker digest --preview ./out   (write, do not send);  tracker digest --send --to pm@example.com
    """
    from tracker.notify.digest import DigestBusy, DigestError, run_digest

    if not send and preview is None:
        fail("say what to do: --preview DIR (write files, send nothing) or --send (mail the digests)")
    after = parse_since(since)
    s = settings()
    eng = engine()
    try:
        run = run_digest(engine=eng, settings=s, send=send, preview_dir=preview, since=after, to=to or None)
    except DigestError as exc:
        fail(str(exc))
    except DigestBusy as exc:
        fail(str(exc), EXIT_BUSY)
    finally:
        eng.dispose()
    for path in run.previews:
        typer.echo(f"wrote {path}")
    typer.echo(run.summary())
    if run.failed or run.lease_lost:
        raise typer.Exit(EXIT_FAILURES)
