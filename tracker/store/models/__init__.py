"""SQLModel tables. Importing this package registers every table on SQLModel.metadata."""

from tracker.store.models.checks import CheckRequest
from tracker.store.models.cluster import CrawlTask, CrawlWorker
from tracker.store.models.core import Blob, Change, CheckState, Snapshot, Source, StreamEntryRecord, Version
from tracker.store.models.digest import Digest
from tracker.store.models.lease import Lease, LeaseHeld, LeaseLost
from tracker.store.models.notify import Delivery, FeedToken
from tracker.store.models.search import SearchDoc, SearchPending
from tracker.store.models.service import APSCHEDULER_JOBS, JobRun, SchedulerState
from tracker.store.models.sops import AuditEvent, Impact, ImpactNote, Sop, Team
from tracker.store.models.users import LoginAttempt, User, WebSecret, WebSession

__all__ = ["APSCHEDULER_JOBS", "AuditEvent", "Blob", "Change", "CheckRequest", "CheckState", "CrawlTask",
           "CrawlWorker", "Delivery", "Digest", "FeedToken", "Impact", "ImpactNote", "JobRun", "Lease",
           "LeaseHeld", "LeaseLost", "LoginAttempt", "SchedulerState", "SearchDoc", "SearchPending", "Snapshot", "Sop",
           "Source", "StreamEntryRecord", "Team", "User", "Version", "WebSecret", "WebSession"]
