"""What became of the calls Baton owed Slack: the ones that failed for good, for `/metrics`
and `baton status` (the outbox itself, bot/outbox.py, sends and retries them)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import SlackOutbox


def failed_by_method(session: Session) -> dict[str, int]:
    """How many calls of each Web API method (or `response_url`) failed for good."""
    rows = session.exec(select(SlackOutbox.method, sa.func.count())
                        .where(col(SlackOutbox.status) == "failed")
                        .group_by(col(SlackOutbox.method)))
    return {method: int(count) for method, count in rows}


def latest_failed(session: Session, *, run_id: int | None = None,
                  limit: int = 3) -> tuple[int, list[SlackOutbox]]:
    """How many calls failed for good (of one run, with `run_id`), and the latest `limit`."""
    where = [col(SlackOutbox.status) == "failed"]
    if run_id is not None:
        where.append(col(SlackOutbox.run_id) == run_id)
    count = session.exec(select(sa.func.count()).select_from(SlackOutbox).where(*where)).one()
    latest = list(session.exec(select(SlackOutbox).where(*where)
                               .order_by(col(SlackOutbox.id).desc()).limit(limit)))
    return int(count), latest
