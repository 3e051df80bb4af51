"""Deleting delivery rows Baton is done with (bot.retention walks them): the statements.

Each table is named by what is kept in it, with when a row was written and when it is done
with: `slack_outbox` (sent or superseded), `slack_inbox` (done), `event` (delivered),
`callback_delivery` (delivered). A row still open, or failed, is never deleted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa

from storage.models import CallbackDelivery, Event, SlackInbox, SlackOutbox
from storage.writer import Writer


@dataclass(frozen=True)
class _Kept:
    table: sa.Table
    born: sa.Column[Any]
    done: sa.ColumnElement[bool]


def _kept() -> dict[str, _Kept]:
    outbox = SlackOutbox.__table__  # type: ignore[attr-defined]
    inbox = SlackInbox.__table__  # type: ignore[attr-defined]
    events = Event.__table__  # type: ignore[attr-defined]
    callbacks = CallbackDelivery.__table__  # type: ignore[attr-defined]
    return {
        "slack_outbox": _Kept(outbox, outbox.c.created_at,
                              outbox.c.status.in_(("sent", "superseded"))),
        "slack_inbox": _Kept(inbox, inbox.c.received_at, inbox.c.status == "done"),
        "event": _Kept(events, events.c.created_at, events.c.delivered_at.is_not(None)),
        "callback_delivery": _Kept(callbacks, callbacks.c.created_at,
                                   callbacks.c.status == "delivered"),
    }


KEPT = _kept()
TABLES: tuple[str, ...] = tuple(KEPT)


@cache
def _batch(name: str) -> tuple[Any, Any]:
    kept = KEPT[name]
    table = kept.table
    after = (sa.select(table.c.id, kept.born < sa.bindparam("cutoff", type_=kept.born.type))
             .where(table.c.id > sa.bindparam("after")).order_by(table.c.id)
             .limit(sa.bindparam("limit")))
    return after, sa.select(sa.func.max(table.c.id))


@cache
def _delete(name: str) -> Any:
    kept = KEPT[name]
    return kept.table.delete().where(
        kept.table.c.id.in_(sa.bindparam("ids", expanding=True)), kept.done)


def rows_after(conn: Any, name: str, after: int, cutoff: datetime, limit: int
               ) -> tuple[list[tuple[int, bool]], int | None]:
    """Up to `limit` rows of table `name` with an id above `after`, oldest first, each as
    (id, written before `cutoff`: compared by the database, as stored), and the table's
    newest id."""
    batch, newest = _batch(name)
    rows = [(row_id, bool(old)) for row_id, old in
            conn.execute(batch, {"after": after, "cutoff": cutoff, "limit": limit})]
    return rows, conn.execute(newest).scalar()


def delete_done(w: Writer, name: str, row_ids: list[int]) -> int:
    """Delete the rows of `row_ids` in table `name` that are done with; how many were."""
    return int(w.execute(_delete(name), {"ids": list(row_ids)}).rowcount)
