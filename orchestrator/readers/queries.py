"""Finding runs: `/baton trace` with no id, and its filters."""

from __future__ import annotations

from datetime import datetime

from storage import reads
from storage.engine import Database
from storage.records import Run


def find_runs(db: Database, *, requester: str | None = None, flow: str | None = None,
              since: datetime | None = None, decided_by: str | None = None,
              limit: int = 20) -> list[Run]:
    """Newest first (storage.reads.find_runs)."""
    with db.read() as s:
        return reads.find_runs(s, requester=requester, flow=flow, since=since,
                               decided_by=decided_by, limit=limit)
