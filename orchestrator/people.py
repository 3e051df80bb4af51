"""Commands from people (and agents' reports): decide, signal, stop, claim, snooze,
reassign, halt and resume. A refusal is traced and changes nothing else."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog

from gates.durations import parse_duration
from gates.options import Refusal
from gates.org import is_service
from orchestrator import claims, deciding, external, steps
from orchestrator.agents.base import (
    AgentFailure,
    AgentResult,
    Attempt,
    validate_output,
)
from orchestrator.deciding import DecisionReport
from orchestrator.errors import (
    BatonError,
    Conflict,
    Forbidden,
    InputError,
    NotFound,
    Unavailable,
)
from orchestrator.events import DomainEvent, announce
from orchestrator.failpoints import crash_point
from orchestrator.running import _Carry
from orchestrator.runs import FINISHED, ONLY_PEOPLE, parse_ref
from orchestrator.runtime import Finish, Goto, Transition, Tx
from orchestrator.spec import ExternalAgent
from orchestrator.text import well_formed
from storage import gates, runs, trace
from storage.records import Gate, Run
from storage.writer import Writer

log = structlog.get_logger("baton.engine")


class PeopleCommands:
    """Part of `Engine` (orchestrator/engine.py): what people ask of runs."""

    def _open_gate(self, w: Writer, run: Run, gate_key: str | None) -> Gate:
        found_open = gates.open_gates(w, run.id)
        if gate_key is not None:
            wanted = [g for g in found_open if g.key == gate_key or str(g.id) == str(gate_key)]
            if not wanted:
                closed = [g for g in gates.gates_newest_first(w, run.id)
                          if g.key == gate_key or str(g.id) == str(gate_key)]
                if closed:
                    state = (f"already decided ({closed[0].outcome})" if closed[0].status == "decided"
                             else "closed: the run ended")
                    raise Refusal(f"gate '{closed[0].key}' of {run.ref} is {state}")
                open_keys = ", ".join(g.key for g in found_open) or "none"
                raise Refusal(f"{run.ref} has no open gate {gate_key!r}; open gates: {open_keys}")
            found_open = wanted
        if not found_open:
            state = run.status if run.status != "running" else "running (not at a gate)"
            raise Refusal(f"{run.ref} has no open gate to decide; it is {state}")
        if len(found_open) > 1:
            raise Refusal(f"{run.ref} has several open gates: "
                          + ", ".join(g.key for g in found_open) + "; say which one (--gate)")
        found = gates.lock_gate(w, found_open[0].id)
        assert found is not None
        return found

    def _run_for_update(self, w: Writer, ref: str | int) -> Run:
        run = runs.lock_run(w, parse_ref(ref))
        if run is None:
            raise NotFound(f"no run {ref}", see="status")
        return run

    def _refused(self, tx: Tx, action: str, user: str, why: str, **data: Any) -> None:
        tx.record("refused", {"action": action, "why": why, **data}, actor=user)

    def _resume_after(self, tx: Tx, transition: Transition | None) -> bool:
        """Apply what a closed gate or fired timer says; True if the run should advance."""
        if transition is None:
            return False
        if isinstance(transition, Goto):
            tx.run.status = "running"
            tx.run.cursor = transition.node
            tx.run.updated_at = tx.now
            return True
        if isinstance(transition, Finish):
            self._finish(tx, transition)
        return False

    def decide(self, ref: str | int, user: str, option: str, *, reason: str | None = None,
               edits: Mapping[str, Any] | None = None, gate: str | None = None) -> DecisionReport:
        """Record one person's decision. Refusals are traced and change nothing else."""
        reason, edits = well_formed(reason), well_formed(edits)
        report, resume, carry = self._isolate_on_crash(partial(
            self._record_decision, ref, user, option, reason, edits, gate))
        crash_point("decision.committed")
        if carry is not None:
            carry()
        elif resume:
            self._schedule(parse_ref(report.run))
        return report

    def _record_decision(self, ref: str | int, user: str, option: str, reason: str | None,
                         edits: Mapping[str, Any] | None, gate: str | None, isolated: bool,
                         ) -> tuple[DecisionReport, bool, _Carry | None]:
        """The transaction of a decision: the report, whether the run goes on, and, inline,
        how far it went in the same transaction (`_carry_on`)."""
        carry: _Carry | None = None
        try:
            with self.db.writer() as w:
                run = self._run_for_update(w, ref)
                tx = self._tx(w, run)
                if run.status in FINISHED:
                    why = f"{run.ref} already finished ({run.status}: {run.reason})"
                    self._refused(tx, "decide", user, why, option=option)
                    return DecisionReport("refused", why, run.ref), False, None
                if is_service(user):
                    self._refused(tx, "decide", user, ONLY_PEOPLE, option=option)
                    return DecisionReport("refused", ONLY_PEOPLE, run.ref), False, None
                try:
                    found = self._open_gate(w, run, gate)
                except Refusal as exc:
                    self._refused(tx, "decide", user, str(exc), option=option)
                    return DecisionReport("refused", str(exc), run.ref), False, None
                report, transition = deciding.record_decision(tx, found, user, option, reason, edits)
                log.info("decision", run=report.run, gate=report.gate, by=user, option=option,
                         status=report.status, why=None if report.ok else report.message)
                resume = self._resume_after(tx, transition)
                if resume:
                    carry = self._carry_on(tx, isolated=isolated)
        except BaseException:
            if carry is not None:  # it did not commit
                carry.abandon()
            raise
        return report, resume, carry

    def report_external(self, ref: str | int, by: str, report: external.Report) -> Run:
        """Record the caller's report of an external action it performed. Refusals (a second
        report, other arguments, nothing approved) are traced and raise Conflict."""
        report = external.Report(report.approval, well_formed(dict(report.arguments)),
                                 report.outcome, well_formed(report.result),
                                 well_formed(report.error))
        refused, resume, carry, run = self._isolate_on_crash(partial(
            self._record_report, ref, by, report))
        if refused is not None:
            raise (Unavailable if refused.later else Conflict)(refused.message)
        if carry is not None:
            carry()
        elif resume:
            self._schedule(parse_ref(ref))
        return run

    def _record_report(self, ref: str | int, by: str, report: external.Report, isolated: bool,
                       ) -> tuple[external.ReportRefused | None, bool, _Carry | None, Run]:
        carry: _Carry | None = None
        try:
            with self.db.writer() as w:
                run = self._run_for_update(w, ref)
                tx = self._tx(w, run)
                outcome = external.record_report(tx, report, by)
                if isinstance(outcome, external.ReportRefused):
                    return outcome, False, None, run
                log.info("external_reported", run=run.ref, by=by, outcome=report.outcome)
                resume = self._resume_after(tx, outcome)
                if resume:
                    carry = self._carry_on(tx, isolated=isolated)
        except BaseException:
            if carry is not None:  # it did not commit
                carry.abandon()
            raise
        return None, resume, carry, run

    def submit_signal(self, ref: str | int, agent: str, output: Mapping[str, Any], by: str) -> str:
        """Record an external agent's signal; a conflict settling for it continues once every
        signal it compares is in."""
        output = well_formed(dict(output))
        refusal = None
        refusal_kind: type[BatonError] = BatonError
        resume = False
        with self.db.writer() as w:
            run = self._run_for_update(w, ref)
            tx = self._tx(w, run)
            flow = tx.program.flow
            spec = flow.agents.get(agent)
            externals = [n for n, a in flow.agents.items() if a.kind == "external"]
            if run.status in FINISHED:
                refusal, refusal_kind = f"{run.ref} already finished ({run.status})", Conflict
            elif spec is None or not isinstance(spec, ExternalAgent):
                refusal = (f"{agent!r} is not an external agent of {flow.name}; external agents: "
                           + (", ".join(externals) or "none"))
                refusal_kind = InputError
            elif by not in self.org.resolve_many(spec.submitters):
                refusal = f"you may not submit {agent}'s signal; submitters: " + ", ".join(
                    spec.submitters)
                refusal_kind = Forbidden
            else:
                try:
                    output_model = validate_output(agent, dict(output))
                except AgentFailure as exc:
                    refusal, refusal_kind = str(exc), InputError
            if refusal:
                self._refused(tx, "signal", by, refusal, agent=agent)
            else:
                result = AgentResult(agent, "external", "ok", output_model, tx.now,
                                     [Attempt(1, tx.now, 0.0)])
                steps.store_result(tx, run.cursor or "external", result, actor=by)
                node = tx.node(run.cursor) if run.cursor else None
                if (run.status == "waiting" and node is not None and node.kind == "conflict"
                        and node.key in run.context.get("settles", {})
                        and all(n in tx.signals() for n in node.spec.among)):
                    run.status = "running"
                    resume = True
        if refusal:
            raise refusal_kind(refusal)
        if resume:
            self._schedule(parse_ref(ref))
        return f"{agent} signal recorded on {run.ref}"

    def stop(self, ref: str | int, user: str, reason: str | None = None) -> Run:
        reason = well_formed(reason)
        refusal = None
        with self.db.writer() as w:
            run = self._run_for_update(w, ref)
            tx = self._tx(w, run)
            refusal_kind: type[BatonError] = Conflict
            if run.status in FINISHED:
                refusal = f"{run.ref} already finished ({run.status})"
            elif user != run.requester and not self.org.is_admin(user):
                refusal = (f"only the requester ({self.org.display(run.requester)}) or an admin "
                           f"can stop {run.ref}")
                refusal_kind = Forbidden
            if refusal:
                self._refused(tx, "stop", user, refusal)
            else:
                why = f"stopped by {self.org.display(user)}" + (f": {reason}" if reason else "")
                self._finish(tx, Finish("stopped", "stopped", why), actor=user)
        if refusal:
            raise refusal_kind(refusal)
        return run

    def _gate_command(self, ref: str | int, user: str, gate_key: str | None, action: str,
                      fn: Callable[[Tx, Gate], str]) -> str:
        refusal = None
        message = ""
        with self.db.writer() as w:
            run = self._run_for_update(w, ref)
            tx = self._tx(w, run)
            try:
                if is_service(user):
                    raise Refusal(ONLY_PEOPLE)
                gate = self._open_gate(w, run, gate_key)
                message = fn(tx, gate)
            except Refusal as exc:
                refusal = str(exc)
                self._refused(tx, action, user, refusal)
        if refusal:
            raise BatonError(refusal)
        return message

    def claim(self, ref: str | int, user: str, gate: str | None = None) -> str:
        return self._gate_command(ref, user, gate, "claim",
                                  lambda tx, g: claims.claim(tx, g, user))

    def snooze(self, ref: str | int, user: str, duration: str | timedelta,
               gate: str | None = None) -> str:
        try:
            wanted = duration if isinstance(duration, timedelta) else parse_duration(duration)
        except ValueError as exc:
            raise BatonError(str(exc)) from None
        return self._gate_command(ref, user, gate, "snooze",
                                  lambda tx, g: claims.snooze(tx, g, user, wanted))

    def reassign(self, ref: str | int, user: str, to: str, gate: str | None = None) -> str:
        if is_service(to):
            raise BatonError(f"{to} cannot be asked to decide: {ONLY_PEOPLE}")
        return self._gate_command(
            ref, user, gate, "reassign",
            lambda tx, g: claims.reassign(tx, g, user, to, is_admin=self.org.is_admin(user)))

    def halt(self, user: str, reason: str | None = None) -> None:
        self._set_halt(user, True, reason)

    def resume(self, user: str, asked_at: datetime | None = None) -> list[str]:
        """Lift the emergency stop. With `asked_at` (when the person asked), only a halt
        from before then: a resume handled late never lifts a newer halt."""
        self._set_halt(user, False, None, asked_at)
        with self.db.read() as s:
            held_ids = runs.run_ids_with_status(s, "held")
        resumed: list[Run] = []
        for run_id in held_ids:
            with self.db.writer() as w:
                run = runs.lock_run(w, run_id)
                if run is None or run.status != "held":
                    continue  # another replica resumed it first
                run.status = "running"
                trace.append(w, run, kind="run_resumed", actor=user,
                             data={"why": f"resumed by {self.org.display(user)}"},
                             at=self.clock.now())
                resumed.append(run)
        for run in resumed:
            assert run.id is not None
            self._schedule(run.id)
        return [r.ref for r in resumed]

    def _set_halt(self, user: str, halted: bool, reason: str | None,
                  asked_at: datetime | None = None) -> None:
        word = "halt" if halted else "resume"
        reason = well_formed(reason)
        with self.db.writer() as w:
            state = runs.lock_system_state(w)
            now = self.clock.now()
            if not self.org.is_admin(user):
                admins = ", ".join(sorted(self.org.display(a) for a in self.org.admins)) or "none"
                why = f"only admins can {word} Baton (admins: {admins})"
                trace.append(w, state, kind="refused", actor=user,
                             data={"action": word, "why": why}, at=now)
                refusal = why
            elif state.halted == halted:
                refusal = "Baton is already halted" if halted else "Baton is not halted"
            elif not halted and asked_at is not None and state.halted_at is not None \
                    and state.halted_at > asked_at:
                refusal = (f"Baton was halted again at {state.halted_at:%H:%M:%S} UTC, after "
                           "this resume was asked; resume again to lift the new halt")
            else:
                refusal = None
                state.halted = halted
                state.halted_by = user if halted else None
                state.halted_at = now if halted else None
                state.halt_reason = reason if halted else None
                kind, data = "halted" if halted else "resumed", {"reason": reason}
                trace.append(w, state, kind=kind, actor=user, data=data, at=now)
                announce(w, DomainEvent(None, "halted" if halted else "resumed", None,
                                        state.trace_seq, kind, user, data, {}, now),
                         self.publish)
        if refusal:
            raise BatonError(refusal)
        log.warning("halted" if halted else "resumed", by=user, reason=reason)
