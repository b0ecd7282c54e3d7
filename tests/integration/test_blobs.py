"""Raw pages are kept compressed by Zstandard; blobs stored by earlier versions (zlib) still read back."""

from __future__ import annotations

import hashlib
import zlib

from sqlalchemy.engine import Engine
from sqlmodel import Session

from tracker.check.state import ZSTD_MAGIC, load_blob, store_blob
from tracker.store.db import session_scope
from tracker.store.models import Blob

PAGE = ("<html><body><article class='policy'>" + "".join(
    f"<p>Rule {i}: we remove content that breaks rule {i % 7} — «règle» {i}.</p>" for i in range(2000))
    + "</article></body></html>").encode()


def test_a_page_is_stored_as_a_zstandard_frame_and_read_back(engine: Engine) -> None:
    with session_scope(engine) as session:
        sha = store_blob(session=session, data=PAGE)
        assert store_blob(session=session, data=PAGE) == sha  # content-addressed: once
    with Session(engine) as session:
        blob = session.get(Blob, sha)
        assert blob is not None and blob.size == len(PAGE)
        assert blob.data.startswith(ZSTD_MAGIC)
        assert len(blob.data) < len(zlib.compress(PAGE, 1))  # smaller than it was stored before
        assert load_blob(session=session, sha256=sha) == PAGE
    assert sha == hashlib.sha256(PAGE).hexdigest()


def test_a_blob_stored_by_an_earlier_version_still_reads(engine: Engine) -> None:
    """Before 2026-12 blobs were zlib streams: they are read as such, nothing is rewritten."""
    sha = hashlib.sha256(PAGE).hexdigest()
    with session_scope(engine) as session:
        session.add(Blob(sha256=sha, size=len(PAGE), data=zlib.compress(PAGE, 1)))
    with Session(engine) as session:
        assert load_blob(session=session, sha256=sha) == PAGE
    with session_scope(engine) as session:  # storing the same page again keeps the old row
        assert store_blob(session=session, data=PAGE) == sha
    with Session(engine) as session:
        blob = session.get(Blob, sha)
        assert blob is not None and not blob.data.startswith(ZSTD_MAGIC)
        assert load_blob(session=session, sha256=sha) == PAGE
