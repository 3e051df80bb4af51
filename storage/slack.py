"""The Slack tables: every statement on the outbox, the inbox and the refs.

- `slack_outbox`: a Web API call Baton owes Slack. Row states: `pending` (due at
  `next_attempt_at`, or at once when it is empty) -> `sending` (claimed by one sender until
  `claim_until`, during its HTTP call) -> `sent`; or `unsure` (the call may or may not have
  reached Slack: looked for before it is made again), `failed` (given up), `superseded`
  (a newer call with the same `supersede` key replaces it, unsent). `OPEN` rows are still
  owed. Delivery order is kept per `lane` by the sender (bot.outbox).
- `slack_ref`: where a sent message lives (channel, ts), under the `ref` its call named,
  so later calls can thread under it (`thread_ref`) or update it (`target_ref`). Written
  once, by the transaction that marks the call sent.
- `slack_inbox`: a request from Slack, stored before it is acknowledged. Its `key` is
  unique: the same request again inserts nothing. Row states: `pending` (claimed by the
  process that accepted it until `claim_until`; a dead claimer's row is taken over by
  `claim_request`) -> `done` or `failed`.

Write functions take the `Writer` of `Database.writer()`; reads take what
`Database.read()` gives (anything with `execute`). The event sink works in the
dispatcher's transaction, a `Writer`: it writes the rows it has queued before it runs a
statement, so the functions under "the event sink" below read the calls queued earlier in
the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa

from storage import dialect
from storage.models import SlackInbox, SlackOutbox, SlackRef
from storage.reads import compiled_reads
from storage.rows import add as add_row
from storage.rows import complete
from storage.writer import Writer

OUTBOX: sa.Table = SlackOutbox.__table__  # type: ignore[attr-defined]
INBOX: sa.Table = SlackInbox.__table__  # type: ignore[attr-defined]
REFS: sa.Table = SlackRef.__table__  # type: ignore[attr-defined]

OPEN = ("pending", "sending", "unsure")


@dataclass(slots=True, eq=False)
class OutboxCall:
    """One `slack_outbox` row, every column."""

    id: int
    run_id: int | None
    lane: str
    method: str
    payload: dict[str, Any]
    ref: str | None
    thread_ref: str | None
    target_ref: str | None
    supersede: str | None
    status: str
    claimed_by: str | None
    claim_until: datetime | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(slots=True, eq=False)
class InboxRequest:
    """One `slack_inbox` row, every column."""

    id: int
    key: str
    kind: str
    payload: dict[str, Any]
    status: str
    claimed_by: str | None
    claim_until: datetime | None
    attempts: int
    error: str | None
    received_at: datetime
    processed_at: datetime | None


class Ref(NamedTuple):
    """Where a sent message lives."""

    channel: str
    ts: str


for _record, _table in ((OutboxCall, OUTBOX), (InboxRequest, INBOX)):
    if tuple(f.name for f in fields(_record)) != tuple(c.name for c in _table.columns):
        raise RuntimeError(f"storage.slack.{_record.__name__} does not match table {_table.name}")


# Built once: building a statement and its cache key costs more than SQLite running it.
# "Still owed" as three comparisons, not IN (...): an IN list is rendered anew at each
# execution, so a statement with one cannot be compiled once (storage.compiled).
_OWED = sa.or_(*(OUTBOX.c.status == status for status in OPEN))
_OPEN_CALLS = (sa.select(OUTBOX).where(_OWED).order_by(OUTBOX.c.id)
               .limit(sa.bindparam("limit")))
_ANY_OPEN_CALL = sa.select(OUTBOX.c.id).where(_OWED).limit(1)
_CALL_WITH_REF = sa.select(OUTBOX.c.id).where(OUTBOX.c.ref == sa.bindparam("key")).limit(1)
_UNSENT_WITH_REF = sa.select(OUTBOX.c.id).where(OUTBOX.c.ref == sa.bindparam("key"),
                                                _OWED).limit(1)
_CLAIM_VIEW = sa.select(OUTBOX.c.status, OUTBOX.c.claimed_by, OUTBOX.c.claim_until,
                        OUTBOX.c.payload).where(OUTBOX.c.id == sa.bindparam("call"))
_CLAIM_VIEW_SKIP_LOCKED = _CLAIM_VIEW.with_for_update(skip_locked=True)
_NEWER_WITH_KEY = sa.select(OUTBOX.c.id).where(
    OUTBOX.c.supersede == sa.bindparam("key"), OUTBOX.c.id > sa.bindparam("call"),
    _OWED).limit(1)
_CLAIM_CALL = (OUTBOX.update().where(OUTBOX.c.id == sa.bindparam("row_id"))
               .values(attempts=OUTBOX.c.attempts + 1))
_SUPERSEDE = (OUTBOX.update().where(OUTBOX.c.id.in_(sa.bindparam("calls", expanding=True)),
                                    _OWED))
_REF = sa.select(REFS.c.channel, REFS.c.ts).where(REFS.c.key == sa.bindparam("key"))
_REF_KNOWN = sa.select(REFS.c.key).where(REFS.c.key == sa.bindparam("key"))
_FAILED_BY_METHOD = (sa.select(OUTBOX.c.method, sa.func.count()).where(OUTBOX.c.status == "failed")
                     .group_by(OUTBOX.c.method))

# the event sink's statements
_QUEUED_POST = sa.select(OUTBOX.c.id, OUTBOX.c.payload).where(
    OUTBOX.c.ref == sa.bindparam("key"), OUTBOX.c.method == "chat.postMessage",
    OUTBOX.c.status == "pending")
_QUEUED_POST_LOCKED = _QUEUED_POST.with_for_update()
# the newest call with a `supersede` key (by the (supersede, id) index), and its state:
# compiled once (storage.compiled), so one statement per key costs less than one IN list
_NEWEST_WITH_KEY = (sa.select(OUTBOX.c.status).where(OUTBOX.c.supersede == sa.bindparam("key"))
                    .order_by(OUTBOX.c.id.desc()).limit(1))
_NEWEST_WITH_KEY_LOCKED = _NEWEST_WITH_KEY.with_for_update()
_SENT_UNDER = sa.select(REFS.c.key).where(REFS.c.run_id == sa.bindparam("run"),
                                          REFS.c.key.startswith(sa.bindparam("prefix")))
_POSTS_UNDER = sa.select(OUTBOX.c.ref).where(OUTBOX.c.run_id == sa.bindparam("run"),
                                             OUTBOX.c.ref.startswith(sa.bindparam("prefix")),
                                             OUTBOX.c.method == "chat.postMessage")

_PENDING_REQUESTS = (sa.select(INBOX.c.id).where(INBOX.c.status == "pending")
                     .order_by(INBOX.c.id).limit(sa.bindparam("limit")))
_REQUEST = sa.select(INBOX).where(INBOX.c.id == sa.bindparam("request"))
_REQUEST_SKIP_LOCKED = _REQUEST.with_for_update(skip_locked=True)
_CLAIM_REQUEST = (INBOX.update().where(INBOX.c.id == sa.bindparam("row_id"))
                  .values(attempts=INBOX.c.attempts + 1))


# -- the outbox: queueing calls -----------------------------------------------------------------
def queue_call(tx: Any, values: dict[str, Any]) -> None:
    """Queue one Web API call in the caller's write transaction (a `Writer`, or the ORM
    session of `Database.write()` an event sink is handed): a plain row, inserted with the
    transaction's other queued rows, in order, before its next read or its commit."""
    if isinstance(tx, Writer):
        tx.queue(OUTBOX, complete(SlackOutbox, values))
    else:
        add_row(tx, SlackOutbox, values)


def queue_call_once(w: Writer, values: dict[str, Any]) -> bool:
    """Queue the call unless a call with the same `ref` was ever queued (a reply tied to a
    request says it once, however often the request is processed); whether it was queued."""
    ref = values.get("ref")
    if ref is not None and w.execute(_CALL_WITH_REF, {"key": ref}).first() is not None:
        return False
    queue_call(w, values)
    return True


# -- the event sink: what it queued, rewritten ---------------------------------------------------
def rewrite_queued_post(tx: Any, ref: str, payload: dict[str, Any]) -> bool:
    """Merge `payload` into the `chat.postMessage` queued under `ref` while it is still
    `pending` (no sender has claimed it): Slack then gets one post with the new content,
    not a post and an update. False when no such post waits (being sent or sent: the caller
    queues a `chat.update` of it instead).

    The row is read locked for the rest of the caller's transaction (PostgreSQL: FOR
    UPDATE; SQLite writes one transaction at a time). A sender claiming it at this moment
    finishes first (the row is then `sending`, not rewritten: the update follows it); a
    sender that comes while the lock is held skips the row until this transaction ends
    (`lock_call`). The sender reads the payload when it claims the row, so the rewrite
    is never lost to a copy it read before."""
    statement = _QUEUED_POST_LOCKED if dialect.locks_rows(_dialect_name(tx)) else _QUEUED_POST
    queued = tx.execute(statement, {"key": ref}).first()
    if queued is None:
        return False
    tx.execute(dialect.update_by_id(OUTBOX), {"row_id": queued.id,
                                              "payload": {**queued.payload, **payload}})
    return True


def lock_pending_newest(tx: Any, keys: Collection[str]) -> set[str]:
    """The `supersede` keys among `keys` whose newest call is still `pending`. Those rows
    are locked for the rest of the caller's transaction (PostgreSQL: FOR UPDATE; SQLite
    writes one at a time), so no sender claims one before this transaction ends
    (`lock_call`): a call rendered when it is sent (an App Home) then shows this
    transaction's changes too, and a second call for the same key would only be
    superseded."""
    if not keys:
        return set()
    statement = (_NEWEST_WITH_KEY_LOCKED if dialect.locks_rows(_dialect_name(tx))
                 else _NEWEST_WITH_KEY)
    return {key for key in sorted(keys)  # one order for every transaction: no deadlock
            if tx.execute(statement, {"key": key}).scalar() == "pending"}


def posts_under(tx: Any, run_id: int, prefix: str) -> list[str]:
    """The refs starting with `prefix` of the run's posts, sorted: those sent (`slack_ref`,
    kept for good) and those queued in any state (the outbox's rows of sent calls are
    deleted after BATON_KEEP_DELIVERED_DAYS). Both found by the run's index."""
    params = {"run": run_id, "prefix": prefix}
    sent = {key for (key,) in tx.execute(_SENT_UNDER, params)}
    queued = {ref for (ref,) in tx.execute(_POSTS_UNDER, params) if ref}
    return sorted(sent | queued)


def _dialect_name(tx: Any) -> str:
    """The dialect of a `Writer` or of an ORM session's bind."""
    return tx.dialect_name if isinstance(tx, Writer) else str(tx.get_bind().dialect.name)


# -- the outbox: sending ----------------------------------------------------------------------
def open_calls(conn: Any, limit: int) -> list[OutboxCall]:
    """The calls still owed (`OPEN`), oldest first (read at each round of the sender:
    compiled once, on the read transaction's cursor)."""
    return [OutboxCall(*row) for row in compiled_reads(conn)(_OPEN_CALLS, {"limit": limit})]


def any_open_call(conn: Any) -> bool:
    return conn.execute(_ANY_OPEN_CALL).first() is not None


def supersede_calls(w: Writer, call_ids: set[int], at: datetime) -> None:
    """Mark the calls of `call_ids` still owed `superseded` (a newer call replaces each)."""
    w.execute(_SUPERSEDE, {"calls": sorted(call_ids), "status": "superseded", "sent_at": at})


def lock_call(w: Writer, call_id: int) -> Any:
    """The call's `status`, `claimed_by`, `claim_until` and `payload`, locked for the rest of
    the transaction; None when there is no such row or (PostgreSQL) another sender holds
    its lock right now (SKIP LOCKED: a sender never waits on another)."""
    statement = _CLAIM_VIEW_SKIP_LOCKED if dialect.locks_rows(w.dialect_name) else _CLAIM_VIEW
    return w.execute(statement, {"call": call_id}).first()


def supersede_if_newer(w: Writer, call: OutboxCall, at: datetime) -> bool:
    """Whether a newer owed call with the same `supersede` key replaces `call` (home tabs,
    gate message updates); `call` is then marked `superseded`. An indexed read of one row."""
    newer = w.execute(_NEWER_WITH_KEY, {"key": call.supersede, "call": call.id}).first()
    if newer is None:
        return False
    w.execute(dialect.update_by_id(OUTBOX), {"row_id": call.id, "status": "superseded",
                                             "sent_at": at})
    return True


def claim_call(w: Writer, call_id: int, owner: str, until: datetime) -> None:
    """`sending`, claimed by `owner` until `until`, one attempt more: done before its HTTP
    call, so a sender that dies during it leaves the call in doubt, never lost."""
    w.execute(_CLAIM_CALL, {"row_id": call_id, "status": "sending", "claimed_by": owner,
                            "claim_until": until})


def refs_of(w: Writer, call: OutboxCall) -> dict[str, Ref] | None:
    """The sent messages `call` refers to (`thread`, `target`); None while one of them is
    still owed. A referred message that was never sent and is no longer owed is left out."""
    refs: dict[str, Ref] = {}
    for name, key in (("thread", call.thread_ref), ("target", call.target_ref)):
        if key is None:
            continue
        found = w.execute(_REF, {"key": key}).first()
        if found is not None:
            refs[name] = Ref(found.channel, found.ts)
            continue
        if w.execute(_UNSENT_WITH_REF, {"key": key}).first() is not None:
            return None
    return refs


def record_sent(w: Writer, call: OutboxCall, response: dict[str, Any], at: datetime) -> None:
    """Mark a call Slack took `sent`, and remember where its message is (once) when the
    call named a `ref` and Slack's answer says where."""
    w.execute(dialect.update_by_id(OUTBOX), {"row_id": call.id, "status": "sent",
                                             "sent_at": at, "last_error": None})
    if (call.ref and response.get("ts") and response.get("channel")
            and w.execute(_REF_KNOWN, {"key": call.ref}).first() is None):
        w.execute(dialect.insert(REFS), {"key": call.ref, "run_id": call.run_id,
                                         "channel": response["channel"], "ts": response["ts"],
                                         "created_at": at})


def reroute_call(w: Writer, call_id: int, method: str, payload: dict[str, Any],
                 reason: str) -> bool:
    """Rewrite the call in place to go another way (`method`, `payload`), `pending` again
    with no attempts, keeping its place in its lane; False when the row is gone."""
    done = w.execute(dialect.update_by_id(OUTBOX), {
        "row_id": call_id, "method": method, "payload": payload, "status": "pending",
        "next_attempt_at": None, "claimed_by": None, "attempts": 0,
        "last_error": reason[:500]})
    return bool(done.rowcount)


def defer_call(w: Writer, call_id: int, *, unsure: bool, until: datetime, reason: str) -> None:
    """Try the call again at `until`: `unsure` when it may have reached Slack, else `pending`."""
    w.execute(dialect.update_by_id(OUTBOX), {
        "row_id": call_id, "status": "unsure" if unsure else "pending",
        "next_attempt_at": until, "last_error": reason[:500]})


def fail_call(w: Writer, call_id: int, reason: str, at: datetime) -> None:
    """Give the call up for good (`failed`): its lane moves on."""
    w.execute(dialect.update_by_id(OUTBOX), {"row_id": call_id, "status": "failed",
                                             "last_error": reason[:500], "sent_at": at})


# -- the outbox: what became of the calls -------------------------------------------------------
def failed_by_method(conn: Any) -> dict[str, int]:
    """How many calls of each Web API method (or `response_url`) failed for good."""
    return {method: int(count) for method, count in conn.execute(_FAILED_BY_METHOD)}


def latest_failed(conn: Any, *, run_id: int | None = None,
                  limit: int = 3) -> tuple[int, list[OutboxCall]]:
    """How many calls failed for good (of one run, with `run_id`), and the latest `limit`."""
    where = [OUTBOX.c.status == "failed"]
    if run_id is not None:
        where.append(OUTBOX.c.run_id == run_id)
    count = conn.execute(sa.select(sa.func.count()).select_from(OUTBOX).where(*where)).scalar_one()
    latest = [OutboxCall(*row) for row in conn.execute(
        sa.select(OUTBOX).where(*where).order_by(OUTBOX.c.id.desc()).limit(limit))]
    return int(count), latest


# -- the inbox ---------------------------------------------------------------------------------
def accept_request(w: Writer, values: dict[str, Any]) -> int | None:
    """Store a request (one statement): its row id, or None when a request with its `key`
    was accepted before, here or by another replica at the same moment."""
    row = complete(SlackInbox, values)
    return w.read(dialect.insert_ignoring(INBOX, w.dialect_name, "key"), row).scalar_one_or_none()


def finish_request(w: Writer, request_id: int, error: str | None, at: datetime) -> None:
    """`done`, or `failed` with `error`; no longer claimed."""
    w.execute(dialect.update_by_id(INBOX), {
        "row_id": request_id, "status": "failed" if error else "done",
        "error": error[:1000] if error else None, "processed_at": at, "claimed_by": None})


def pending_request_ids(conn: Any, limit: int) -> list[int]:
    """The requests not finished yet, oldest first."""
    return [row[0] for row in conn.execute(_PENDING_REQUESTS, {"limit": limit})]


def claim_request(w: Writer, request_id: int, owner: str, until: datetime,
                  may_take: Callable[[InboxRequest], bool]) -> InboxRequest | None:
    """The pending request, claimed by `owner` until `until` with one attempt more, when
    `may_take` says its claim is abandoned; None otherwise (finished, or another live
    process has it; on PostgreSQL also while another transaction holds its lock)."""
    statement = _REQUEST_SKIP_LOCKED if dialect.locks_rows(w.dialect_name) else _REQUEST
    row = w.execute(statement, {"request": request_id}).first()
    if row is None:
        return None
    request = InboxRequest(*row)
    if request.status != "pending" or not may_take(request):
        return None
    w.execute(_CLAIM_REQUEST, {"row_id": request_id, "claimed_by": owner,
                               "claim_until": until})
    request.claimed_by, request.claim_until = owner, until
    request.attempts += 1
    return request
