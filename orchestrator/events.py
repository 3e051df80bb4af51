"""The notifier port: the orchestrator reports what happened as typed events and never
imports Slack.

A change is recorded once, as its trace entry (`Tx.record(kind, data, event=...)`); the
event that reports it is a row of the `event` table pointing at that entry (its run and
seq), written in the same transaction (a transactional outbox), so a crash can neither lose
an event nor report a change that did not commit. Consumers read the entry, never a copy of
it. Two kinds of consumer:

- *observers* get each event in-process right after commit, best effort (the console
  notifier of the CLI);
- one durable *sink* (the Slack bot) gets every event through the `Dispatcher`, which
  retries with backoff and keeps per-run order: an event waits while an earlier event of
  its run is undelivered. The sink handles an event inside the transaction that marks it
  delivered, so what it derives from the event (Slack messages to send) is stored exactly
  once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from orchestrator.failpoints import crash_point
from storage import changes, trace
from storage.changes import queue_event
from storage.engine import Database
from storage.records import Event, TraceEntry
from storage.writer import Writer

log = structlog.get_logger("baton.events")

EVENT_KINDS = frozenset({
    "run_started", "gate_opened", "conflict_opened", "vote_recorded", "gate_decided",
    "escalated", "reminder", "claimed", "snoozed", "reassigned", "boundary_violated",
    "run_held", "run_finished", "run_failed", "run_stopped", "halted", "resumed",
    "action_due", "action_reported",
})


@dataclass(frozen=True)
class DomainEvent:
    """What notifiers get: what to do about a happening (`kind`) and the trace entry that
    records it (`entry`, `actor`, `data`: the notifiers read the entry, never a second
    copy of it). `extra` is what the entry does not say and a notifier needs: kept to a
    few values (`EXTRAS`)."""

    id: int | None  # None when published in-process, before the row has one
    kind: str
    run_id: int | None
    seq: int | None  # the entry's place on its chain; None for an event from before 0011
    entry: str  # the trace entry's kind
    actor: str
    data: dict[str, Any]
    extra: dict[str, Any]
    at: datetime

    @property
    def run_ref(self) -> str | None:
        return f"R-{self.run_id}" if self.run_id else None

    @classmethod
    def from_rows(cls, row: Event, entry: TraceEntry | None) -> DomainEvent:
        """The stored event and the trace entry it points at (None for an event written
        before events pointed at their entry: its payload has everything)."""
        if entry is None:
            if row.seq is not None:
                raise LookupError(f"event {row.id} reports entry #{row.seq} of "
                                  f"{trace.chain_of(row.run_id)}, which is not stored")
            return cls.from_payload(row.id, row.kind, row.run_id, dict(row.payload),
                                    row.created_at)
        return cls(row.id, row.kind, row.run_id, entry.seq, entry.kind, entry.actor,
                   dict(entry.data), dict(row.payload), row.created_at)

    @classmethod
    def from_payload(cls, event_id: int, kind: str, run_id: int | None,
                     payload: dict[str, Any], at: datetime) -> DomainEvent:
        """An event as Baton wrote it before 0011: one payload of its own, read here as the
        entry it reported would say it, so the notifiers read one shape."""
        data = {k: v for k, v in payload.items() if k != "run"}
        actor = str(data.get("by") or data.get("reported_by") or data.get("requester") or "baton")
        entry = {"conflict_opened": "gate_opened", "vote_recorded": "decision",
                 "boundary_violated": "boundary", "run_failed": "run_finished",
                 "run_stopped": "run_finished"}.get(kind, kind)
        if kind in ("gate_opened", "conflict_opened"):
            if data.get("deadline"):
                data["escalation"] = {"notify": data.get("notify", []),
                                      "deadline": data["deadline"]}
            else:
                data["approver_spec"] = data.get("notify", [])
        elif kind == "escalated" and data.get("final"):
            entry = "escalation_exhausted"
        elif kind == "reminder" and data.get("why") == "snooze ended":
            entry = "snooze_ended"
        elif kind == "action_reported":
            entry = "action_done" if data.get("succeeded") else "action_failed"
        return cls(event_id, kind, run_id, None, entry, actor, data, data, at)


# What an event carries besides the entry it points at, by event kind: values a notifier
# shows that the trace does not record (the trace stays what auditors read, and as small).
EXTRAS: dict[str, tuple[str, ...]] = {
    "vote_recorded": ("approvals", "quorum"),  # the tally after this vote
    "gate_decided": ("kind",),  # the gate's kind, which words the outcome (and callbacks say)
    "boundary_violated": ("message",),  # the violation in words, when the entry has none
}


class Notifier(Protocol):
    """An in-process observer, called after commit."""

    def notify(self, event: DomainEvent) -> None: ...


class EventSink(Protocol):
    """The durable consumer, called in the write transaction (`tx`, a `storage.writer.Writer`)
    that marks the event delivered. Raise to have the event retried later."""

    def handle(self, tx: Writer, event: DomainEvent) -> None: ...


class Sinks:
    """Several durable consumers as one: each handles every event in the same transaction,
    so they all take it or none does (and it is retried)."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def handle(self, tx: Writer, event: DomainEvent) -> None:
        for sink in self.sinks:
            sink.handle(tx, event)


def announce(w: Writer, event: DomainEvent,
             publish: Callable[[list[DomainEvent]], None] | None = None) -> None:
    """Record `event`, about an entry this transaction appended, in the current write
    transaction (a plain row, inserted with the transaction's other queued rows; events are
    only ever inserted here). The row stores the entry's place and `extra`, not the entry
    again. What is published in-process after commit carries no id: only the durable sink,
    which reads the stored rows, needs one."""
    assert event.kind in EVENT_KINDS, event.kind
    assert event.seq is not None
    unknown = set(event.extra) - set(EXTRAS.get(event.kind, ()))
    assert not unknown, f"{event.kind} carries {sorted(unknown)}: record them in the entry"
    queue_event(w, event.run_id, event.kind, event.seq, event.extra, event.at)
    if publish is not None:
        pending = w.events
        if not pending:
            w.after_commit(lambda: publish(list(pending)))
        pending.append(event)


class Dispatcher:
    """Delivers undelivered events to the durable sink, in order per run.

    Up to `together` due events share one transaction: a backlog (a burst of decisions)
    costs a commit per few events, not one per event. If one of them fails, that
    transaction is undone as a whole and the events are delivered again one at a time, so
    only the one that failed waits for its retry."""

    def __init__(self, db: Database, sink: EventSink, clock: Any, *, batch: int = 200,
                 together: int = 8, max_backoff: timedelta = timedelta(minutes=5)) -> None:
        self.db = db
        self.sink = sink
        self.clock = clock
        self.batch = batch
        self.together = together
        self.max_backoff = max_backoff
        self._rng = random.Random()

    def deliver_pending(self) -> int:
        """Deliver what is due; return how many events were delivered."""
        now = self.clock.now()
        with self.db.read() as s:
            rows = changes.undelivered_events(s, self.batch)
        # A run whose event failed, is not due yet, or is held by another worker right now:
        # its later events wait, so they can never overtake it.
        blocked: set[int | None] = set()
        delivered = 0
        due: list[tuple[int, int | None]] = []
        for row in rows:
            if row.run_id in blocked and row.run_id is not None:
                continue
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                blocked.add(row.run_id)
                continue
            due.append((row.id, row.run_id))
            if len(due) == self.together:
                delivered += self._deliver_due(due, blocked)
                due = []
        if due:
            delivered += self._deliver_due(due, blocked)
        return delivered

    def _deliver_due(self, due: list[tuple[int, int | None]], blocked: set[int | None]) -> int:
        """Deliver `due` in one transaction, or one at a time if that fails; add to `blocked`
        the runs whose later events must wait."""
        results = self._deliver_together(due) if len(due) > 1 else None
        if results is None:
            results = self._in_order(due, self._deliver)
        blocked.update(run_id for event_id, run_id in due
                       if results.get(event_id, "delivered") not in ("delivered", "done"))
        return sum(result == "delivered" for result in results.values())

    def _deliver_together(self, due: list[tuple[int, int | None]]) -> dict[int, str] | None:
        """One transaction for all of `due`; None (and nothing kept) if one of them failed."""
        try:
            with self.db.writer() as w:
                return self._in_order(due, lambda event_id: self._handle(w, event_id))
        except Exception as exc:
            log.info("event_batch_undone", events=len(due), error=str(exc))
            return None

    @staticmethod
    def _in_order(due: list[tuple[int, int | None]],
                  deliver: Callable[[int], str]) -> dict[int, str]:
        """Deliver each event of `due` in turn; once one of a run's is not delivered (failed,
        or another worker has it), that run's later ones are left for another time."""
        results: dict[int, str] = {}
        held: set[int] = set()
        for event_id, run_id in due:
            if run_id is not None and run_id in held:
                continue
            results[event_id] = deliver(event_id)
            if run_id is not None and results[event_id] not in ("delivered", "done"):
                held.add(run_id)
        return results

    def _deliver(self, event_id: int) -> str:
        """delivered | done (someone else delivered it) | busy (someone else has it) | failed"""
        try:
            with self.db.writer() as w:
                return self._handle(w, event_id)
        except Exception as exc:
            self._failed(event_id, exc)
            return "failed"

    def _handle(self, w: Writer, event_id: int) -> str:
        """Hand one event to the sink and mark it delivered, in the caller's transaction."""
        row = changes.take_event(w, event_id)
        if row is None:
            return "busy"
        if row.delivered_at is not None:
            return "done"
        entry = None if row.seq is None else trace.entry_at(w, trace.chain_of(row.run_id),
                                                             row.seq)
        self.sink.handle(w, DomainEvent.from_rows(row, entry))
        crash_point("outbox.written")
        changes.mark_delivered(w, row, self.clock.now())
        return "delivered"

    def _failed(self, event_id: int, exc: Exception) -> None:
        def retry_at(attempts: int) -> datetime:
            delay = min(self.max_backoff.total_seconds(), 2 ** min(attempts, 12))
            return self.clock.now() + timedelta(seconds=delay * (0.5 + self._rng.random() / 2))

        with self.db.writer() as w:
            attempts = changes.delivery_failed(w, event_id, f"{type(exc).__name__}: {exc}",
                                               retry_at)
        if attempts is not None:
            log.warning("event_delivery_failed", event_id=event_id, error=str(exc),
                        attempts=attempts)
