"""The Slack side of the notifier port: domain events become Slack messages.

`SlackSink.handle` runs inside the dispatcher's transaction that marks the event
delivered, so every message an event implies is queued in the outbox exactly once. Every
later event of a run goes into the thread under its run card; people whose turn it is are
mentioned there and get the gate by DM when a decision escalates to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

from bot.blocks import esc
from bot.outbox import enqueue
from bot.render import gates as gate_render
from bot.render import runs as run_render
from bot.render.common import SlackVoice, mention, target
from bot.render.gates import GateView
from bot.render.home import SHOWN_RUNS, home_view
from bot.views import gate_view, home
from gates.org import Org
from orchestrator.events import DomainEvent
from orchestrator.gating import eligible, excluded
from orchestrator.kinds import KINDS
from orchestrator.wording import count, seconds
from storage import reads, slack
from storage.engine import after_commit
from storage.records import FlowVersion, Gate, Run
from storage.writer import Writer

log = structlog.get_logger("baton.notifier")

HOME = "home"  # the outbox renderer of App Home views

# What the handlers write through: the dispatcher's write transaction, a `Writer`, reading
# records (storage.records), never ORM instances.
Tx = Writer


def card_ref(run_id: int) -> str:
    return f"R-{run_id}:card"


def gate_ref(run_id: int, gate_id: int) -> str:
    return f"R-{run_id}:gate:{gate_id}"


class SlackSink:
    def __init__(self, org: Org, *, on_queued: Callable[[], None] | None = None) -> None:
        self.org = org
        self.voice = SlackVoice(org)
        self.on_queued = on_queued
        self._titles: dict[int | None, str] = {}  # flow version -> its title

    # -- helpers --------------------------------------------------------------------------------
    def channel_for(self, run: Run) -> str | None:
        origin = run.origin or {}
        if origin.get("kind") == "slack" and origin.get("channel"):
            return str(origin["channel"])
        default = self.org.data.default_channel
        return self.org.channel_id(default) if default else None

    def _post(self, s: Tx, run: Run, payload: dict[str, Any], at: Any, *,
              ref: str | None = None, threaded: bool = True, channel: str | None = None) -> None:
        channel = channel or self.channel_for(run)
        if channel is None:
            return
        assert run.id is not None
        enqueue(s, lane=f"run:{run.id}", method="chat.postMessage", run_id=run.id, at=at,
                payload={"channel": channel, **payload, "unfurl_links": False},
                ref=ref, thread_ref=card_ref(run.id) if threaded else None)

    def _update(self, s: Tx, run: Run, ref: str, payload: dict[str, Any], at: Any) -> None:
        enqueue(s, lane=f"run:{run.id}", method="chat.update", run_id=run.id, at=at,
                payload=payload, target_ref=ref)

    def _update_card(self, s: Tx, run: Run, card: dict[str, Any], at: Any) -> None:
        """Show the run's new state on its card. While the card's own post is still queued
        (a run that reached its gate at once), that post is rewritten instead: one call
        to Slack, not a post and then an update. Locked (`storage.slack.rewrite_queued_post`),
        so that a sender claims the post only once this transaction has ended and sends the
        new card (PostgreSQL; SQLite writes one at a time); the sender reads the payload
        when it claims the row."""
        assert run.id is not None
        if not slack.rewrite_queued_post(s, card_ref(run.id), card):
            self._update(s, run, card_ref(run.id), card, at)

    def _dm(self, s: Tx, run: Run, principal: str, payload: dict[str, Any], at: Any,
            ref: str | None = None) -> None:
        slack_id = self.org.slack_id(principal)
        if slack_id is None:
            return
        enqueue(s, lane=f"run:{run.id}", method="chat.postMessage", run_id=run.id, at=at,
                payload={"channel": slack_id, **payload}, ref=ref)

    def refresh_home(self, s: Tx, principal: str, at: Any) -> None:
        self.refresh_homes(s, [principal], at)

    def refresh_homes(self, s: Tx, principals: Iterable[str], at: Any) -> None:
        """Queue a publish of each person's App Home. The view is built when the call is sent
        (`home_payload`), from the state of that moment: a burst of gate changes renders a
        home once, not once per change for every approver (the newest call supersedes the
        others unrendered)."""
        keys: dict[str, tuple[str, str]] = {}
        for principal in principals:
            slack_id = self.org.slack_id(principal)
            if slack_id is not None:
                keys[f"home:{slack_id}"] = (principal, slack_id)
        if not keys:
            return
        # A home whose newest publish is still pending (no sender has claimed it) renders
        # the state of the moment it goes, this change included: a second row would only
        # be superseded. One query for all the people, however many approvers the gate has.
        pending = slack.lock_pending_newest(s, keys)
        for key, (principal, slack_id) in keys.items():
            if key not in pending:
                enqueue(s, lane=key, method="views.publish", at=at,
                        payload={"render": HOME, "user_id": slack_id, "principal": principal},
                        supersede=key)

    def home_payload(self, s: Tx, args: dict[str, Any]) -> dict[str, Any]:
        principal = str(args["principal"])
        shown = home(s, principal)
        return {"user_id": args["user_id"],
                "view": home_view(self.org, principal, shown.gates, shown.runs, total=shown.waiting)}

    def _gate_and_copies(self, s: Tx, run: Run, gate: Gate, at: Any) -> None:
        """Re-render a gate message and its DM copies after its state changed."""
        assert run.id is not None and gate.id is not None
        view = gate_view(s, gate, run)
        self._update(s, run, gate_ref(run.id, gate.id), gate_render.gate_message(self.org, view), at)
        # its DM copies, sent or still queued
        refs = slack.posts_under(s, run.id, gate_ref(run.id, gate.id) + ":dm:")
        entries = self._sent_why(s, run, gate) if refs else []
        for ref in refs:
            reader = self.org.principal_for_slack(ref.rpartition(":dm:")[2])
            self._update(s, run, ref, self._dm_copy(view, reader, entries), at)

    def _sent_why(self, s: Tx, run: Run, gate: Gate) -> list[tuple[str, str, dict[str, Any]]]:
        """What sends a gate to someone by DM: its escalations and reassignments, oldest first."""
        assert gate.id is not None
        return reads.gate_entries(s, run.ref, gate.id, ("escalated", "reassigned"))

    def _dm_copy(self, view: GateView, reader: str,
                 entries: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
        why = gate_render.why_you(self.org, reader, entries, view.levels)
        return gate_render.gate_message(self.org, view, dm=True, why=why)

    # -- events -----------------------------------------------------------------------------------
    def handle(self, tx: Writer, event: DomainEvent) -> None:
        """In the dispatcher's write transaction `tx` (orchestrator.events.EventSink): what
        the handler queues is inserted with the transaction's other queued rows."""
        if event.kind not in ON_EVENT:  # written by a newer Baton: nothing we know to show
            log.error("event_kind_unknown", kind=event.kind, event_id=event.id)
            return
        handler = ON_EVENT[event.kind]
        if handler is None:
            return
        run = tx.get(Run, event.run_id) if event.run_id else None
        handler(self, tx, run, event)
        if self.on_queued is not None:
            after_commit(tx, self.on_queued)

    def on_run_started(self, s: Tx, run: Run, e: DomainEvent) -> None:
        assert run.id is not None
        self._post(s, run, self._card(s, run, "running"), e.at, ref=card_ref(run.id),
                   threaded=False)
        self.refresh_homes(s, self._requester_home(s, run), e.at)

    def _requester_home(self, s: Tx, run: Run) -> list[str]:
        """The requester, if their home lists `run`: it shows each of the newest runs they
        started with its status, so every change of that status is theirs to see."""
        assert run.id is not None
        return [run.requester] if reads.among_newest_runs(s, run.requester, run.id, SHOWN_RUNS) else []

    def on_gate_opened(self, s: Tx, run: Run, e: DomainEvent) -> None:
        p, at = e.data, e.at
        gate = s.get(Gate, p["gate_id"])
        if gate is None or run.id is None:
            return
        view = gate_view(s, gate, run)
        ref = gate_ref(run.id, gate.id or 0)
        message = gate_render.gate_message(self.org, view)
        # the first level of its escalation chain, or (without one) the approvers it names
        notify = (p.get("escalation") or {}).get("notify", p.get("approver_spec", []))
        pinged = self._pings(notify, gate, run)
        if pinged:
            message = {**message, "text": f"{pinged}: {message['text']}"}
        if self.channel_for(run) is not None:
            self._post(s, run, message, at, ref=ref)
        else:  # nowhere to post: the people who can decide get it directly
            for principal in sorted(eligible(gate, run.requester)):
                slack_id = self.org.slack_id(principal)
                self._dm(s, run, principal, gate_render.gate_message(self.org, view, dm=True), at,
                         ref=f"{ref}:dm:{slack_id}")
        self._update_card(s, run, self._card(s, run, "waiting"), at)
        self.refresh_homes(s, [*gate.approvers, *self._requester_home(s, run)], at)

    def _pings(self, specs: Iterable[str], gate: Gate, run: Run) -> str:
        """The mentions that ping `specs` about `gate`: never its requester under four-eyes
        (they wait for someone else's decision)."""
        leave_out = excluded(gate, run.requester)
        return " ".join(text for text in (target(self.org, spec, leave_out) for spec in specs)
                        if text)

    def _card(self, s: Tx, run: Run, status: str, reason: str | None = None) -> dict[str, Any]:
        title = self._titles.get(run.flow_version_id)
        if title is None:  # a flow version never changes: read its definition once
            version = s.get(FlowVersion, run.flow_version_id)
            title = str(version.definition.get("title", "")) if version else ""
            self._titles[run.flow_version_id] = title
        return run_render.run_card(self.org, ref=run.ref, flow=run.flow_name, title=title,
                                   requester=run.requester, inputs=run.inputs, status=status,
                                   reason=reason, origin=run.origin)

    def on_vote_recorded(self, s: Tx, run: Run, e: DomainEvent) -> None:
        p, at = e.data, e.at
        gate = s.get(Gate, p["gate_id"])
        if gate is None:
            return
        view = gate_view(s, gate, run)
        self._post(s, run, gate_render.vote_note(self.org, view, e.actor, p["option"]), at)
        self._gate_and_copies(s, run, gate, at)

    def on_gate_decided(self, s: Tx, run: Run, e: DomainEvent) -> None:
        at = e.at
        gate = s.get(Gate, e.data["gate_id"])
        if gate is None:
            return
        self._gate_and_copies(s, run, gate, at)
        self.refresh_homes(s, [*gate.approvers, *self._requester_home(s, run)], at)

    def on_escalated(self, s: Tx, run: Run, e: DomainEvent) -> None:
        p, at = e.data, e.at
        gate = s.get(Gate, p["gate_id"])
        if gate is None or run.id is None:
            return
        notify = p.get("notify", [])
        pinged = self._pings(notify, gate, run) or "nobody"
        note = gate_render.escalation_note(self.org, run.ref, gate.key, level=p.get("level"),
                                           notify=pinged, why=p.get("why", ""),
                                           deadline=p.get("deadline"), final=p.get("final"))
        self._post(s, run, note, at)
        self._gate_and_copies(s, run, gate, at)
        if p.get("final"):
            return
        view = gate_view(s, gate, run)
        people: set[str] = set()
        for spec in notify:
            if spec.startswith("channel:"):
                channel = self.org.channel_id(spec.partition(":")[2])
                if channel and channel != self.channel_for(run):
                    text = (f":rotating_light: {esc(run.ref)} needs a decision: {esc(gate.title)} "
                            f"(escalated to this channel; decide in the run's thread)")
                    self._post(s, run, {"text": text}, at, threaded=False, channel=channel)
            else:
                people |= self.org.resolve(spec)
        pinged_people = sorted(people & eligible(gate, run.requester))
        entries = self._sent_why(s, run, gate) if pinged_people else []
        for principal in pinged_people:
            slack_id = self.org.slack_id(principal)
            self._dm(s, run, principal, self._dm_copy(view, principal, entries), at,
                     ref=f"{gate_ref(run.id, gate.id or 0)}:dm:{slack_id}")
        self.refresh_homes(s, pinged_people, at)

    def on_reminder(self, s: Tx, run: Run, e: DomainEvent) -> None:
        p, at = e.data, e.at
        gate = s.get(Gate, p["gate_id"])
        if gate is None:
            return
        pinged = self._pings(p.get("notify", []), gate, run) or "nobody"
        why = "snooze ended" if e.entry == "snooze_ended" else p.get("why")
        self._post(s, run, gate_render.reminder_note(self.org, run.ref, gate.key, pinged,
                                                     p.get("deadline"), why), at)
        self._gate_and_copies(s, run, gate, at)

    def _say(self, e: DomainEvent) -> str:
        """The thread's note for the entry `e` reports (orchestrator.kinds)."""
        say = KINDS[e.entry].slack
        assert say is not None, e.entry
        return say(e.data, e.actor, self.voice)

    def on_claimed(self, s: Tx, run: Run, e: DomainEvent) -> None:
        self._escalation_state(s, run, e, self._say(e))

    def on_snoozed(self, s: Tx, run: Run, e: DomainEvent) -> None:
        self._escalation_state(s, run, e, self._say(e))

    def on_reassigned(self, s: Tx, run: Run, e: DomainEvent) -> None:
        p, at = e.data, e.at
        self._escalation_state(s, run, e, self._say(e))
        gate = s.get(Gate, p["gate_id"])
        if gate is not None and run.id is not None:
            view = gate_view(s, gate, run)
            slack_id = self.org.slack_id(p["to"])
            self._dm(s, run, p["to"], self._dm_copy(view, p["to"], self._sent_why(s, run, gate)), at,
                     ref=f"{gate_ref(run.id, gate.id or 0)}:dm:{slack_id}")
            self.refresh_home(s, p["to"], at)

    def _escalation_state(self, s: Tx, run: Run, e: DomainEvent, text: str) -> None:
        self._post(s, run, run_render.note(text), e.at)
        gate = s.get(Gate, e.data["gate_id"])
        if gate is not None:
            self._gate_and_copies(s, run, gate, e.at)

    def on_boundary_violated(self, s: Tx, run: Run, e: DomainEvent) -> None:
        message = e.extra.get("message", e.data.get("message"))
        self._post(s, run, run_render.note(self._say(e), message), e.at)

    def on_action_due(self, s: Tx, run: Run, e: DomainEvent) -> None:
        self._post(s, run, run_render.action_due_note(self.org, run.requester, e.data), e.at)

    def on_action_reported(self, s: Tx, run: Run, e: DomainEvent) -> None:
        report = {**e.data, "succeeded": e.entry == "action_done"}
        self._post(s, run, run_render.action_reported_note(self.org, report), e.at)

    def on_run_held(self, s: Tx, run: Run, e: DomainEvent) -> None:
        p, at = e.data, e.at
        assert run.id is not None
        self._post(s, run, run_render.run_note(run.ref, "held", p["why"]), at)
        self._update_card(s, run, self._card(s, run, "held", p["why"]), at)
        self.refresh_homes(s, self._requester_home(s, run), at)

    def on_run_finished(self, s: Tx, run: Run, e: DomainEvent) -> None:
        p, at = e.data, e.at
        assert run.id is not None
        # Gates the run left open (stopped, cancelled by its API caller) lose their buttons,
        # and leave their approvers' homes.
        cancelled = reads.cancelled_gates_of_run(s, run.id)
        for gate in cancelled:
            self._gate_and_copies(s, run, gate, at)
        homes = {principal for gate in cancelled for principal in gate.approvers}
        extra = (f"{count(p.get('steps', 0), 'step')} · {seconds(p.get('duration_s', 0))} · "
                 f"`/baton trace {run.ref}`")
        if p.get("outcome") == "setup":  # not the approvers' to fix: the requester is told
            extra = (f"{mention(self.org, run.requester)}: your run could not reach its model. "
                     f"Ask the Baton operator to fix the setup, then start it again · {extra}")
        self._post(s, run, run_render.run_note(run.ref, p["status"], p.get("why", ""), extra=extra), at)
        self._update_card(s, run, self._card(s, run, p["status"], p.get("why")), at)
        self.refresh_homes(s, sorted(homes | set(self._requester_home(s, run))), at)

    def _system(self, s: Tx, e: DomainEvent, text: str) -> None:
        default = self.org.data.default_channel
        channel = self.org.channel_id(default) if default else None
        if channel is None:
            return
        enqueue(s, lane="system", method="chat.postMessage", at=e.at,
                payload={"channel": channel, **run_render.note(text, e.data.get("reason"))})

    def on_halted(self, s: Tx, run: Run | None, e: DomainEvent) -> None:
        self._system(s, e, self._say(e))

    def on_resumed(self, s: Tx, run: Run | None, e: DomainEvent) -> None:
        self._system(s, e, self._say(e))


EventHandler = Callable[[SlackSink, Tx, Run | None, DomainEvent], None]

# Every kind of event the orchestrator emits (orchestrator.events.EVENT_KINDS) and what Slack
# shows for it; None where Slack deliberately shows nothing. A new kind needs an entry here
# (tests/bot/test_event_dispatch.py fails without one).
ON_EVENT: dict[str, EventHandler | None] = {
    "run_started": SlackSink.on_run_started,  # the run card, in the channel it came from
    "gate_opened": SlackSink.on_gate_opened,
    "conflict_opened": SlackSink.on_gate_opened,  # a conflict is a gate with "follow X" buttons
    "vote_recorded": SlackSink.on_vote_recorded,
    "gate_decided": SlackSink.on_gate_decided,
    "escalated": SlackSink.on_escalated,
    "reminder": SlackSink.on_reminder,
    "claimed": SlackSink.on_claimed,
    "snoozed": SlackSink.on_snoozed,
    "reassigned": SlackSink.on_reassigned,
    "boundary_violated": SlackSink.on_boundary_violated,
    "run_held": SlackSink.on_run_held,
    "run_finished": SlackSink.on_run_finished,
    "run_failed": SlackSink.on_run_finished,
    "run_stopped": SlackSink.on_run_finished,
    "halted": SlackSink.on_halted,
    "resumed": SlackSink.on_resumed,
    "action_due": SlackSink.on_action_due,
    "action_reported": SlackSink.on_action_reported,
}
