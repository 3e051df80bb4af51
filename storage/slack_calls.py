"""What became of the calls Baton owed Slack: now in storage.slack, with the outbox's other
statements. Kept for bot/cli.py's import until it reads storage.slack itself."""

from __future__ import annotations

from storage.slack import failed_by_method, latest_failed

__all__ = ["failed_by_method", "latest_failed"]
