"""The crawl's downloader: Scrapy's own, made to keep each host's concurrency limit.

Why it exists: in Scrapy 2.19 (scrapy/core/downloader/__init__.py) ``Downloader._process_queue`` lets
a slot's queued requests through with::

    while slot.queue and slot.free_transfer_slots() > 0:
        request, queue_dfd = slot.queue.popleft()
        _schedule_coro(self._wait_for_download(slot, request, queue_dfd))

and ``free_transfer_slots()`` is ``concurrency - len(slot.transferring)``. But the request joins
``slot.transferring`` only in the first line of ``_download``, run by that coroutine, which
``_schedule_coro`` merely schedules (``loop.create_task`` under the asyncio reactor, Scrapy's default
since 2.13): it starts on a later turn of the event loop. Until then the slot looks idle, both to the
rest of this loop and to every other ``_process_queue`` call before those coroutines run (there is
one per request handed to the slot, and the engine hands over several in one turn: all that waited
for the host's robots.txt, say). So a slot let
through everything the engine let into the downloader, CONCURRENT_REQUESTS in all, whatever
CONCURRENT_REQUESTS_PER_DOMAIN or a source's ``concurrency`` said (with the tracker's defaults, 8
requests at once to a host promised 2). A download delay hid it: the loop then lets one request
through per delay.

The fix counts a request as transferring when it is let through, before its coroutine is even
created, so the loop's own condition sees it; ``_download`` adding it again is a no-op (a set) and
removes it when the download ends, as before. Nothing else changes: a slot with room still sends as
many requests at once as its concurrency allows. With a Scrapy that adds the request synchronously
the override changes nothing at all. tests/e2e/test_crawl_politeness.py proves the limits end to end.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from scrapy import Request
from scrapy.core.downloader import Downloader, Slot
from scrapy.http import Response
from twisted.internet.defer import Deferred

PATH = f"{__name__}.PoliteDownloader"  # the DOWNLOADER setting


class PoliteDownloader(Downloader):
    """Scrapy's downloader, counting a request against its slot's concurrency as soon as it is let through."""

    def _wait_for_download(self, slot: Slot, request: Request,
                           queue_dfd: Deferred[Response]) -> Coroutine[Any, Any, None]:
        # Called by _process_queue for each request it lets through, before the next check of the
        # slot's free transfer slots: see the module docstring.
        slot.transferring.add(request)
        return super()._wait_for_download(slot, request, queue_dfd)
