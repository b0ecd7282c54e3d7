"""/metrics: the SLA page (filled in by the metrics step)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
