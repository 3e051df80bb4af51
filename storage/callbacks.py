"""Signed callback deliveries owed to callers (`callback_delivery`).

Row states: `pending` (due at `next_attempt_at`, or at once when it is empty) ->
`sending` (claimed by one sender until `claim_until`; a sender that died leaves it to be
claimed again: at least once) -> `delivered` or, past `give_up_at`, `failed`.

Writes take the `Writer` of `Database.writer()` (`queue_callback` also the ORM session an
event sink is handed); reads what `Database.read()` gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage import dialect
from storage.models import ApiToken
from storage.models import CallbackDelivery as CallbackDeliveryModel
from storage.rows import add as add_row
from storage.rows import complete
from storage.writer import Writer

DELIVERIES: sa.Table = CallbackDeliveryModel.__table__  # type: ignore[attr-defined]
TOKENS: sa.Table = ApiToken.__table__  # type: ignore[attr-defined]


@dataclass(slots=True, eq=False)
class CallbackDelivery:
    """One `callback_delivery` row, every column."""

    id: int
    event_id: str
    run_id: int
    token_id: int
    url: str
    kind: str
    body: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: datetime | None
    claimed_by: str | None
    claim_until: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    give_up_at: datetime
    delivered_at: datetime | None


if tuple(f.name for f in fields(CallbackDelivery)) != tuple(c.name for c in DELIVERIES.columns):
    raise RuntimeError("storage.callbacks.CallbackDelivery does not match its table")

# "Not delivered or given up" as two comparisons, not IN (...): compiled once (storage.compiled).
_OPEN = sa.or_(DELIVERIES.c.status == "pending", DELIVERIES.c.status == "sending")
_OPEN_DELIVERIES = (sa.select(DELIVERIES).where(_OPEN).order_by(DELIVERIES.c.id)
                    .limit(sa.bindparam("limit")))
_DUE = sa.select(DELIVERIES).where(
    DELIVERIES.c.id == sa.bindparam("delivery"), _OPEN,
    sa.or_(DELIVERIES.c.next_attempt_at.is_(None),
           DELIVERIES.c.next_attempt_at <= sa.bindparam(
               "now", type_=DELIVERIES.c.next_attempt_at.type)))
_DUE_SKIP_LOCKED = _DUE.with_for_update(skip_locked=True)
_SECRET = sa.select(TOKENS.c.callback_secret).where(TOKENS.c.id == sa.bindparam("token"))


def queue_callback(tx: Any, values: dict[str, Any]) -> None:
    """Queue one delivery in the caller's write transaction (inserted with its other rows)."""
    if isinstance(tx, Writer):
        tx.queue(DELIVERIES, complete(CallbackDeliveryModel, values))
    else:
        add_row(tx, CallbackDeliveryModel, values)


def open_callbacks(conn: Any, limit: int = 200) -> list[CallbackDelivery]:
    """Deliveries not yet delivered or given up, oldest first."""
    return [CallbackDelivery(*row) for row in conn.execute(_OPEN_DELIVERIES, {"limit": limit})]


def claim_callback(w: Writer, delivery_id: int, owner: str, until: datetime, now: datetime, *,
                   may_take: Callable[[CallbackDelivery], bool]) -> CallbackDelivery | None:
    """The delivery, locked (PostgreSQL: skipped while another sender holds its lock) and
    claimed for `owner` until `until` with one attempt more; None when it is not ours to send
    now (delivered, not due, or `sending` under a claim `may_take` says is another live
    sender's)."""
    statement = _DUE_SKIP_LOCKED if dialect.locks_rows(w.dialect_name) else _DUE
    row = w.execute(statement, {"delivery": delivery_id, "now": now}).first()
    if row is None:
        return None
    found = CallbackDelivery(*row)
    if found.status == "sending" and not may_take(found):
        return None
    found.status, found.claimed_by, found.claim_until = "sending", owner, until
    found.attempts += 1
    w.execute(dialect.update_by_id(DELIVERIES), {
        "row_id": delivery_id, "status": "sending", "claimed_by": owner, "claim_until": until,
        "attempts": found.attempts})
    return found


def callback_secret(conn: Any, token_id: int) -> str | None:
    """The signing secret of the token that started the run (None: the token is gone)."""
    return conn.execute(_SECRET, {"token": token_id}).scalar()


def record_delivered(w: Writer, delivery_id: int, status: int, at: datetime) -> None:
    w.execute(dialect.update_by_id(DELIVERIES), {
        "row_id": delivery_id, "status": "delivered", "delivered_at": at, "last_status": status,
        "last_error": None, "claimed_by": None, "claim_until": None})


def record_failure(w: Writer, delivery_id: int, *, status: int | None, error: str,
                   retry_at: datetime | None) -> None:
    """A failed attempt: due again at `retry_at`, or given up (`failed`) when it is None."""
    w.execute(dialect.update_by_id(DELIVERIES), {
        "row_id": delivery_id, "status": "pending" if retry_at is not None else "failed",
        "next_attempt_at": retry_at, "last_status": status, "last_error": error[:500],
        "claimed_by": None, "claim_until": None})

