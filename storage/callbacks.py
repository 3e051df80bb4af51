"""Signed callback deliveries owed to callers (`callback_delivery`).

Row states: `pending` (due at `next_attempt_at`, or at once when it is empty) ->
`sending` (claimed by one sender until `claim_until`; a sender that died leaves it to be
claimed again: at least once) -> `delivered` or, past `give_up_at`, `failed`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, or_, select

from storage import rows
from storage.models import CallbackDelivery

_TABLE = CallbackDelivery.__table__  # type: ignore[attr-defined]


def queue_callback(session: Session, values: dict[str, Any]) -> None:
    """Queue one delivery in the caller's write transaction (inserted with its other rows)."""
    rows.add(session, CallbackDelivery, values)


def open_callbacks(session: Session, limit: int = 200) -> list[CallbackDelivery]:
    """Deliveries not yet delivered or given up, oldest first."""
    return list(session.exec(
        select(CallbackDelivery).where(col(CallbackDelivery.status).in_(("pending", "sending")))
        .order_by(col(CallbackDelivery.id)).limit(limit)))


def claim_callback(session: Session, delivery_id: int, owner: str, until: datetime,
                   now: datetime, *, skip_locked: bool,
                   may_take: Callable[[CallbackDelivery], bool]) -> CallbackDelivery | None:
    """The delivery, locked and claimed for `owner`; None when it is not ours to send now
    (delivered, not due, or `sending` under a claim `may_take` says is another live
    sender's)."""
    query = select(CallbackDelivery).where(CallbackDelivery.id == delivery_id).where(
        col(CallbackDelivery.status).in_(("pending", "sending")),
        or_(col(CallbackDelivery.next_attempt_at).is_(None),
            col(CallbackDelivery.next_attempt_at) <= now))
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    row = session.exec(query).first()
    if row is None or (row.status == "sending" and not may_take(row)):
        return None
    row.status = "sending"
    row.claimed_by = owner
    row.claim_until = until
    row.attempts += 1
    session.add(row)
    return row


def record_delivered(session: Session, delivery_id: int, status: int, at: datetime) -> None:
    session.connection().execute(_TABLE.update().where(_TABLE.c.id == delivery_id).values(
        status="delivered", delivered_at=at, last_status=status, last_error=None,
        claimed_by=None, claim_until=None))


def record_failure(session: Session, delivery_id: int, *, status: int | None, error: str,
                   retry_at: datetime | None) -> None:
    """A failed attempt: due again at `retry_at`, or given up (`failed`) when it is None."""
    session.connection().execute(_TABLE.update().where(_TABLE.c.id == delivery_id).values(
        status="pending" if retry_at is not None else "failed", next_attempt_at=retry_at,
        last_status=status, last_error=error[:500], claimed_by=None, claim_until=None))


def callbacks_of_run(session: Session, run_id: int) -> list[CallbackDelivery]:
    return list(session.exec(select(CallbackDelivery).where(CallbackDelivery.run_id == run_id)
                             .order_by(col(CallbackDelivery.id))))
