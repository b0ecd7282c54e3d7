"""Telling people: the digest, team channels (email, Apprise), immediate alerts, deliveries recorded once."""

from tracker.notify.channels import CHANNELS

__all__ = ["CHANNELS"]
