"""The web UI and JSON API for program managers (FastAPI, server-rendered Jinja2 pages)."""

from tracker.web.app import create_app

__all__ = ["create_app"]
