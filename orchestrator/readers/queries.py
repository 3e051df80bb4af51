"""Finding runs: `/baton trace` with no id, and its filters."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select

from storage.engine import Database
from storage.models import Decision, Run


def find_runs(db: Database, *, requester: str | None = None, flow: str | None = None,
              since: datetime | None = None, decided_by: str | None = None,
              limit: int = 20) -> list[Run]:
    """Newest first. Uses the (requester, created_at), (flow_name, created_at) and
    (decider, created_at) indexes."""
    query = select(Run)
    if requester is not None:
        query = query.where(col(Run.requester) == requester)
    if flow is not None:
        query = query.where(col(Run.flow_name) == flow)
    if since is not None:
        query = query.where(col(Run.created_at) >= since)
    if decided_by is not None:
        decided = select(Decision.run_id).where(col(Decision.decider) == decided_by)
        if since is not None:
            decided = decided.where(col(Decision.created_at) >= since)
        query = query.where(col(Run.id).in_(decided))
    with db.read() as s:
        return list(s.exec(query.order_by(col(Run.id).desc()).limit(limit)))
