"""The Celery executor's ledger: batches grouped by queue and host, a source never owed twice, a broker
outage kept as unsent batches (shown in `tracker status`) and sent once the broker answers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from tests.support.cluster import BrokerProxy, broker_url
from tracker.config import get_settings
from tracker.declare.sources import SourceSpec, sync_sources
from tracker.service.executor import CeleryExecutor, cluster_status
from tracker.store.db import session_scope, utcnow
from tracker.store.models import CrawlTask

UNREACHABLE = "redis://127.0.0.1:1/0"


def _sources(engine: Engine) -> None:
    specs = [SourceSpec(id=f"a{i}", name="a", url=f"http://127.0.0.2:8000/docs/p?copy={i}") for i in range(3)]
    specs += [SourceSpec(id="b0", name="b", url="http://127.0.0.3:8000/docs/p"),
              SourceSpec(id="eu0", name="eu", url="http://127.0.0.3:8000/docs/p?eu", queue="eu")]
    with session_scope(engine) as s:
        sync_sources(session=s, specs=specs)


def _tasks(engine: Engine) -> list[CrawlTask]:
    with Session(engine) as s:
        return list(s.exec(select(CrawlTask).order_by(CrawlTask.queue, CrawlTask.host, CrawlTask.created_at)))


def test_batches_by_queue_and_host_and_never_owed_twice(engine: Engine) -> None:
    _sources(engine)
    ex = CeleryExecutor(settings=get_settings(broker_url=UNREACHABLE, task_batch=2), engine=engine)
    ex.submit(["a0", "a1", "a2", "b0", "eu0"])
    got = sorted((t.queue, t.host, t.sources, t.state) for t in _tasks(engine))
    assert got == [("default", "127.0.0.2:8000", ["a0", "a1"], "unsent"),
                   ("default", "127.0.0.2:8000", ["a2"], "unsent"),
                   ("default", "127.0.0.3:8000", ["b0"], "unsent"),
                   ("eu", "127.0.0.3:8000", ["eu0"], "unsent")]
    ex.submit(["a0", "b0"])  # still owed by unfinished batches: not planned again
    assert len(_tasks(engine)) == 4


def test_a_broker_outage_keeps_the_batches_shows_in_status_and_resumes(engine: Engine) -> None:
    import redis

    url = broker_url()
    client = redis.Redis.from_url(url)
    client.delete("default")
    proxy = BrokerProxy(url)
    _sources(engine)
    ex = CeleryExecutor(settings=get_settings(broker_url=proxy.url), engine=engine)
    ex.submit(["a0", "b0"])  # the broker is down: nothing can be sent
    assert {t.state for t in _tasks(engine)} == {"unsent"}
    assert "broker unreachable" in (_tasks(engine)[0].error or "")
    with Session(engine) as s:
        status = cluster_status(session=s, now=utcnow())
    assert status["broker"] is not None and status["broker"]["unsent"] == 2
    proxy.up()  # the broker is back: the same executor sends what it kept, no restart
    try:
        ex.tick()
        assert {t.state for t in _tasks(engine)} == {"queued"}
        assert client.llen("default") == 2
        with Session(engine) as s:
            assert cluster_status(session=s, now=utcnow())["broker"] is None
    finally:
        proxy.down()
        client.delete("default")


def test_an_expired_batch_sends_its_unchecked_sources_again(engine: Engine) -> None:
    _sources(engine)
    ex = CeleryExecutor(settings=get_settings(broker_url=UNREACHABLE), engine=engine)
    ex.submit(["a0"])
    with session_scope(engine) as s:
        for t in s.exec(select(CrawlTask)):
            t.expires_at = utcnow() - timedelta(seconds=1)
    ex.tick()
    states = sorted((t.state, tuple(t.sources)) for t in _tasks(engine))
    assert states == [("expired", ("a0",)), ("unsent", ("a0",))]


@pytest.mark.parametrize("queue", ["EU", "eu west", "-eu", "x" * 41])
def test_sources_sync_refuses_a_bad_queue_name(queue: str) -> None:
    with pytest.raises(ValueError, match="worker queue name"):
        SourceSpec(id="s", name="s", url="http://127.0.0.1/", queue=queue)


def test_the_cluster_migration_upgrades_and_downgrades(database_url: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    from tracker.store.db import alembic_config, make_engine, upgrade

    upgrade(database_url, "0016")
    eng = make_engine(database_url)
    try:
        assert not {"crawl_task", "crawl_worker"} & set(sa.inspect(eng).get_table_names())
        upgrade(database_url, "0019")
        assert {"crawl_task", "crawl_worker"} <= set(sa.inspect(eng).get_table_names())
        command.downgrade(alembic_config(database_url), "0016")
        assert not {"crawl_task", "crawl_worker"} & set(sa.inspect(eng).get_table_names())
        upgrade(database_url, "0019")
        assert {"crawl_task", "crawl_worker"} <= set(sa.inspect(eng).get_table_names())
    finally:
        eng.dispose()
