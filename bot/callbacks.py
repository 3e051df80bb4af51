"""Signed callbacks to the services that start runs through the API.

A run started with a `callback_url` gets a POST when its external action is due
(`action.due`), when a gate is decided (`gate.decided`) and when it finishes
(`run.finished`). `CallbackSink` turns those domain events into `callback_delivery` rows
inside the dispatcher's transaction that marks the event delivered (beside the Slack sink):
the row exists once the event is handled, whatever crashes after. `CallbackSender` posts
them after commit and retries with backoff for `give_up_after` (24 h): at least once, so
each body carries an event `id` for the receiver to de-duplicate on.

Each POST is signed with the starting token's callback secret:
`Baton-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. Redirects
are not followed, the host is checked against BATON_CALLBACK_HOSTS again before each
attempt, and at most a kilobyte of the answer is read. An attempt ends after `timeout`
seconds in all, however the receiver answers: httpx's timeouts bound each read, and a
receiver sending its answer a byte every few seconds held a sender (and with it every
other run's callbacks, a round waiting for all its lanes) for as long as it liked. Every
attempt and its outcome is traced on the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from gates.callbacks import AllowedHost, callback_problem
from orchestrator.events import DomainEvent
from orchestrator.failpoints import crash_point
from orchestrator.owners import Owners
from orchestrator.workers import BackgroundLoop
from storage import callbacks as stored
from storage import reads, trace
from storage.callbacks import CallbackDelivery
from storage.engine import Database, after_commit, store_json
from storage.runs import lock_run, read_run

log = structlog.get_logger("baton.callbacks")

# Every kind of event the orchestrator emits (orchestrator.events.EVENT_KINDS) and the
# callback type it becomes; None where the caller gets no callback: the rest is theirs to
# ask for (GET /api/v1/runs/R-42) or happens in Slack. A new kind needs an entry here
# (tests/bot/test_event_dispatch.py fails without one).
KINDS: dict[str, str | None] = {
    "action_due": "action.due",
    "gate_decided": "gate.decided",
    "run_finished": "run.finished",
    "run_failed": "run.finished",
    "run_stopped": "run.finished",
    "run_started": None,  # the caller started it: the POST's answer says so
    "gate_opened": None, "conflict_opened": None, "vote_recorded": None,  # people's side
    "escalated": None, "reminder": None, "claimed": None, "snoozed": None, "reassigned": None,
    "boundary_violated": None,  # a violation that ends the run ends it: run.finished says why
    "run_held": None,
    "halted": None, "resumed": None,  # Baton-wide, not one run's
    "action_reported": None,  # the caller reported it
}
# The body's `data` (docs/api.md): the trace entry's data as it is, or these of its fields
# (a decided gate's entry says more than the callback ever did).
BODY_FIELDS: dict[str, tuple[str, ...]] = {
    "gate.decided": ("gate_id", "gate", "kind", "outcome", "option", "decided_by", "why"),
}
GIVE_UP_AFTER = timedelta(hours=24)
CLAIM = timedelta(seconds=60)  # longer than an attempt's timeouts
MAX_BACKOFF_S = 600.0
ANSWER_BYTES = 1024


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class CallbackSink:
    """Domain events of API runs with a callback_url -> deliveries to make."""

    def __init__(self, clock: Any, *, give_up_after: timedelta = GIVE_UP_AFTER,
                 on_queued: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.give_up_after = give_up_after
        self.on_queued = on_queued

    def handle(self, tx: Any, event: DomainEvent) -> None:
        """In the transaction the event is delivered in (orchestrator.events.EventSink)."""
        kind = KINDS.get(event.kind)  # an unknown kind (a newer Baton's): no callback either
        if kind is None or event.run_id is None:
            return
        run = read_run(tx, event.run_id)
        origin = (run.origin or {}) if run is not None else {}
        if run is None or not origin.get("callback_url") or origin.get("token_id") is None:
            return
        event_id = f"evt_{uuid.uuid4().hex}"
        fields = BODY_FIELDS.get(kind)
        merged = {**event.data, **event.extra}
        data = merged if fields is None else {k: merged[k] for k in fields if k in merged}
        if kind == "gate.decided" and event.data.get("gate_id") is not None:
            data["decisions"] = [{"by": d.decider, "option": d.option, "effect": d.effect,
                                  "reason": d.reason, "edits": d.edits, "counted": d.counted,
                                  "at": d.created_at.isoformat()}
                                 for d in reads.decisions_of_gate(tx, event.data["gate_id"])]
        body = {"id": event_id, "type": kind, "created_at": event.at.isoformat(),
                "run": {"id": run.ref, "flow": run.flow_name, "status": run.status}, "data": data}
        now = self.clock.now()
        stored.queue_callback(tx, {
            "event_id": event_id, "run_id": run.id, "token_id": origin["token_id"],
            "url": origin["callback_url"], "kind": kind, "body": body, "created_at": now,
            "give_up_at": now + self.give_up_after})
        if self.on_queued is not None:
            after_commit(tx, self.on_queued)


class CallbackSender:
    """Posts due deliveries: several runs' at once, each run's in order."""

    def __init__(self, db: Database, clock: Any, hosts: Sequence[AllowedHost], *,
                 poll: float = 1.0, timeout: float = 10.0, at_once: int = 4) -> None:
        self.db = db
        self.clock = clock
        self.hosts = tuple(hosts)
        self.timeout = timeout
        self.owners = Owners()
        self.owner = self.owners.take()
        self._loop = BackgroundLoop("baton-callbacks", self._drain, poll)
        self._senders = ThreadPoolExecutor(at_once, thread_name_prefix="baton-callback")
        self._rng = random.Random()

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._senders.shutdown(wait=True)

    def wake(self) -> None:
        self._loop.wake()

    def _drain(self) -> None:
        while self.deliver():
            pass

    def deliver(self) -> int:
        """One round: what is due, in order per run. Returns how many were delivered."""
        now = self.clock.now()
        with self.db.read() as s:
            found = stored.open_callbacks(s)
        lanes: dict[int, list[CallbackDelivery]] = {}
        for row in found:
            lanes.setdefault(row.run_id, []).append(row)
        return sum(self._senders.map(lambda lane: self._deliver_lane(lane, now), lanes.values()))

    def _deliver_lane(self, lane: list[CallbackDelivery], now: datetime) -> int:
        delivered = 0
        for row in lane:
            if not self._claimable(row, now):
                break  # a later event of this run waits for this one
            result = self._send(row)
            if result != "delivered":
                break
            delivered += 1
        return delivered

    def _claimable(self, row: CallbackDelivery, now: datetime) -> bool:
        if row.next_attempt_at is not None and _aware(row.next_attempt_at) > now:
            return False
        if row.status == "sending" and row.claimed_by and row.claimed_by != self.owner:
            expired = row.claim_until is not None and _aware(row.claim_until) <= now
            return expired or self.owners.dead(row.claimed_by)
        return True

    def _send(self, row: CallbackDelivery) -> str:
        assert row.id is not None
        now = self.clock.now()
        with self.db.writer() as w:
            claimed = stored.claim_callback(w, row.id, self.owner, now + CLAIM, now,
                                            may_take=lambda fresh: self._claimable(fresh, now))
            if claimed is None:
                return "busy"
            secret = stored.callback_secret(w, claimed.token_id)
            attempt = claimed.attempts
        problem = callback_problem(row.url, self.hosts) or _parsers_disagree(row.url)
        if problem is not None or secret is None:
            why = problem or "the token that started the run is gone"
            self._record(row, attempt, status=None, error=f"not sent: {why}", give_up=True)
            return "failed"
        body = store_json(row.body).encode()
        stamp = int(time.time())  # the receiver's clock, not the engine's (tests may fake it)
        headers = {"Content-Type": "application/json", "Baton-Signature": sign(secret, stamp, body),
                   "Baton-Event-Id": row.event_id, "Baton-Event-Type": row.kind}
        started = time.perf_counter()
        try:
            status = asyncio.run(self._post(row.url, body, headers))
        except TimeoutError:
            self._record(row, attempt, status=None,
                         error=f"no answer within {self.timeout:g} s")
            return "failed"
        except httpx.HTTPError as exc:
            self._record(row, attempt, status=None, error=f"{type(exc).__name__}: {exc}")
            return "failed"
        elapsed_ms = (time.perf_counter() - started) * 1000
        if 200 <= status < 300:
            crash_point("callback.sent")
            self._record(row, attempt, status=status, ms=elapsed_ms)
            return "delivered"
        why = "a redirect (callbacks do not follow redirects)" if 300 <= status < 400 else "refused"
        self._record(row, attempt, status=status, error=f"HTTP {status}: {why}", ms=elapsed_ms)
        return "failed"

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the answer's status, within `timeout` seconds in all (TimeoutError
        otherwise: the connection is dropped, whatever the receiver is still sending)."""
        async with asyncio.timeout(self.timeout), httpx.AsyncClient(
                follow_redirects=False, trust_env=False,
                timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                headers={"User-Agent": "Baton-Callbacks/1"}) as http, \
                http.stream("POST", url, content=body, headers=headers) as answer:
            async for _ in answer.aiter_bytes(ANSWER_BYTES):
                break  # enough to know it answered; a flood of bytes is not read
            return answer.status_code

    def _record(self, row: CallbackDelivery, attempt: int, *, status: int | None,
                error: str | None = None, ms: float | None = None, give_up: bool = False) -> None:
        """Store the attempt's outcome and trace it on the run, in one transaction."""
        assert row.id is not None
        now = self.clock.now()
        data: dict[str, Any] = {"event_id": row.event_id, "type": row.kind,
                                "host": urlsplit(row.url).hostname, "attempt": attempt}
        if status is not None:
            data["status"] = status
        if ms is not None:
            data["latency_ms"] = round(ms, 1)
        retry_at = None
        if error is None:
            kind = "callback_delivered"
        else:
            data["error"] = error[:500]
            delay = min(MAX_BACKOFF_S, 2.0 ** min(attempt, 12)) * (0.5 + self._rng.random() / 2)
            if not give_up and now + timedelta(seconds=delay) < _aware(row.give_up_at):
                retry_at = now + timedelta(seconds=delay)
                data["retry_at"] = retry_at.isoformat()
                kind = "callback_failed"
            else:
                kind = "callback_abandoned"
                data["why"] = error if give_up else "retried until its give-up time"
        with self.db.writer() as w:
            if error is None:
                stored.record_delivered(w, row.id, status or 0, now)
            else:
                stored.record_failure(w, row.id, status=status, error=error, retry_at=retry_at)
            run = lock_run(w, row.run_id)
            if run is not None:
                trace.append(w, run, kind=kind, actor="baton", data=data, at=now)
        log.info(kind, run=f"R-{row.run_id}", event_id=row.event_id, attempt=attempt,
                 status=status, error=error)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _parsers_disagree(url: str) -> str | None:
    """The HTTP client must go to the host the allowlist admitted: both parsers must agree."""
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, ValueError):
        return "httpx cannot parse the URL"
    expected = (urlsplit(url).hostname or "").rstrip(".")
    return None if host.rstrip(".").strip("[]") == expected.strip("[]") else "the URL's host is ambiguous"
