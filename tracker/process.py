"""A one-job process's start-up: its imports with the cyclic garbage collector held off, then frozen.

Modules, classes, the tables and Scrapy's machinery live as long as a `tracker crawl`; each full
collection during a crawl walked all of them again (~150,000 objects: ~0.2 s of a 1,000-page re-check,
see docs/performance.md). Once the start-up is frozen (gc.freeze), the youngest generation is collected
every YOUNG_THRESHOLD allocations instead of Python's 700: a first check makes hundreds of block objects
per page, and collecting them ~900 times per 1,000 pages cost ~0.2 s more.

Frozen objects are never collected: only a process that is the job (the `tracker` program, a benchmark's
own process) may do this, never a test suite or an application that calls the CLI.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Allocations (less deallocations) between two collections of the youngest generation after start-up.
YOUNG_THRESHOLD = 10_000


@contextmanager
def frozen_startup() -> Iterator[None]:
    """Run the start-up inside with the collector off; then freeze what it made and collect the young
    generation less often. Does nothing when the collector is off already (someone else decided)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
        gc.enable()
