"""The Celery application of `TRACKER_EXECUTOR=celery`, built from the settings (never at import time).

Delivery is at least once, and the crawl task is idempotent, which together make each due check
happen once: `acks_late` acknowledges a task only after its batch is recorded, and
`reject_on_worker_lost` puts it back when the process running it dies, so a killed worker's batch
is delivered again; the worker that receives it checks only what was not checked since the task
was made (tracker.service.worker). No result backend: the outcome is in the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

    from tracker.config import Settings

CRAWL_TASK = "tracker.crawl_batch"
# The queue of sources that name none; `queue: eu` in the sources file sends a source to "eu".
DEFAULT_QUEUE = "default"


def make_app(settings: Settings) -> Celery:
    """A Celery app on TRACKER_BROKER_URL, configured for acknowledgement after the work is recorded."""
    from celery import Celery

    app = Celery("tracker", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker holds only what it is running: the rest stays for others
        task_default_queue=DEFAULT_QUEUE,
        task_create_missing_queues=True,
        task_serializer="json", accept_content=["json"],
        task_ignore_result=True, result_backend=None,
        # Redis: a task taken by a worker that vanished comes back after this (RabbitMQ: when its
        # connection drops). Longer than a crawl may run, or a running task would be delivered twice.
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a broker outage pauses a worker; it resumes by itself
        broker_connection_timeout=3.0,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app
