"""Timers firing: a due timer escalates or reminds at a gate, ends a settle window, or
finds an external action overdue. A timer that is no longer current does nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from gates import escalation as esc
from gates.durations import format_duration
from orchestrator import deciding, external
from orchestrator.runtime import Transition, Tx
from storage import gates, runs, timers, trace
from storage.records import Gate, Run, Timer
from storage.writer import Writer

log = structlog.get_logger("baton.engine")


class Wakeups:
    """Part of `Engine` (orchestrator/engine.py): timers coming due."""

    def fire_timer(self, timer_id: int) -> bool:
        """A timer is due. Returns True if it did something (it was current)."""
        with self.db.read() as s:
            state = timers.timer_state(s, timer_id)
        if state is None or state[0] != "pending":
            return False
        run_id = state[1]
        resume = False
        acted = False
        with self.db.writer() as w:
            run = runs.lock_run(w, run_id)
            timer = timers.lock_timer(w, timer_id)
            if run is None or timer is None or timer.status != "pending":
                return False
            if timer.due_at > self.clock.now():
                return False  # woken early (another replica's clock, a rounding): not yet
            timer.fired_at = self.clock.now()
            if timer.gate_id is None:
                return self._fire_run_timer(w, run, timer)
            gate = gates.lock_gate(w, timer.gate_id)
            if gate is None or gate.status != "open" or gate.timer_token != timer.token:
                timer.status = "stale"
                return False
            timer.status = "fired"
            tx = self._tx(w, run)
            transition = on_gate_timer(tx, gate, timer)
            resume = self._resume_after(tx, transition)
            acted = True
        if resume:
            self._schedule(run_id)
        return acted

    def _fire_run_timer(self, w: Writer, run: Run, timer: Timer) -> bool:
        """A timer of the run itself (not of a gate), by its kind."""
        handlers = {"settle": self._end_settle, external.TIMER_KIND: self._external_overdue}
        return handlers[timer.kind](w, run, timer)

    def _external_overdue(self, w: Writer, run: Run, timer: Timer) -> bool:
        """The caller did not report an external action's result in time."""
        tx = self._tx(w, run)
        transition = external.on_timeout(tx, timer)
        timer.status = "stale" if transition is None else "fired"
        if transition is None:
            return False
        if self._resume_after(tx, transition):
            run_id = run.id
            w.after_commit(lambda: self._schedule(run_id))
        return True

    def _end_settle(self, w: Writer, run: Run, timer: Timer) -> bool:
        """A settle window closed: continue the conflict step with the signals it has."""
        node = timer.payload.get("node")
        current = (run.status == "waiting" and run.cursor == node
                   and run.context.get("settles", {}).get(node) == timer.token)
        timer.status = "fired" if current else "stale"
        if not current:
            return False
        run.status = "running"
        trace.append(w, run, kind="settle_ended", actor="baton", node=node,
                     data={"why": "the settle window closed"}, at=self.clock.now())
        run_id = run.id
        w.after_commit(lambda: self._schedule(run_id))
        return True

    def due_timers(self, limit: int = 500) -> list[int]:
        now = self.clock.now()
        with self.db.read() as s:
            return timers.due_timer_ids(s, now, limit)

    def fire_due_timers(self) -> int:
        fired = 0
        for timer_id in self.due_timers():
            try:
                fired += self.fire_timer(timer_id)
            except Exception:
                log.exception("timer_failed", timer=timer_id)
        return fired

    def pending_timers(self, until: datetime | None = None) -> list[tuple[int, datetime]]:
        with self.db.read() as s:
            return timers.pending_timers(s, until)


def on_gate_timer(tx: Tx, gate: Gate, timer: Timer) -> Transition | None:
    """A valid timer of `gate` fired."""
    chain = esc.Chain.from_dict(gate.chain)
    level = chain.levels[gate.esc_level]
    if timer.kind == "remind":
        tx.record("reminder", {"gate": gate.key, "gate_id": gate.id, "level": gate.esc_level + 1,
                               "notify": list(level.notify),
                               "deadline": gate.next_deadline.isoformat()
                               if gate.next_deadline else None}, node=gate.node, event="reminder")
        return None
    if timer.kind == "escalate":
        if timer.payload.get("snoozed"):
            return deciding.escalate(tx, gate, f"no decision at level {gate.esc_level + 1} by the end "
                                      "of its snooze")
        return deciding.escalate(tx, gate, f"no decision within {_fmt(level.wait)} at level "
                                  f"{gate.esc_level + 1}")
    if timer.kind == "claim_expired":
        who = tx.org.display(gate.claimed_by or "?")
        since = timer.payload.get("since")
        held = _fmt(timer.due_at.replace(tzinfo=None)
                    - datetime.fromisoformat(since).replace(tzinfo=None)) if since else _fmt(
            chain.claim_timeout)
        return deciding.escalate(tx, gate, f"{who} claimed it but did not decide within {held}")
    if timer.kind == "snooze_ended":
        if gate.next_deadline is None or gate.next_deadline <= tx.now:
            # a snooze from before snoozes kept the next step: its time has come
            return deciding.escalate(tx, gate, f"no decision at level {gate.esc_level + 1} by the end "
                                      "of its snooze")
        gate.esc_state = "waiting"
        deadline = gate.next_deadline.isoformat()
        tx.record("snooze_ended", {"gate": gate.key, "gate_id": gate.id,
                                   "level": gate.esc_level + 1, "notify": list(level.notify),
                                   "deadline": deadline}, node=gate.node, event="reminder")
        return None
    raise ValueError(f"unknown timer kind {timer.kind}")


def _fmt(delta: timedelta) -> str:
    return format_duration(delta)
