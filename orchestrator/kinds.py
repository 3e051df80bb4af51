"""What each kind of trace entry says, on every surface, in one table (`KINDS`): the
timeline's line (`baton trace`, `/baton trace`, the report), how it went (`mark`, drawn as
an emoji in Slack), the CLI's line when it happens (`console`) and the Slack thread's note
(`slack`). A notifier gets the entry an event points at, so it looks up the entry's kind
here like the timeline does. A surface with no words for a kind leaves it None.

Each describer gets the entry's data, its actor and the org (the Slack note gets a `Voice`
instead: how Slack names a person and quotes text, which the orchestrator does not know).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gates.access import through_words
from gates.org import Org
from orchestrator.wording import (
    clock_time,
    count,
    deadline,
    gate_outcome,
    number,
    seconds,
    values,
)

Data = dict[str, Any]
Line = Callable[[Data, str, Org], str]  # (data, actor, org) -> words


class Voice(Protocol):
    """How a Slack note names a person and quotes text (bot/ implements it)."""

    def person(self, principal: str) -> str: ...

    def code(self, text: str) -> str: ...

    def text(self, text: str) -> str: ...


@dataclass(frozen=True)
class Kind:
    line: Line
    mark: str | Callable[[Data], str] = ""
    console: Line | None = None
    slack: Callable[[Data, str, Voice], str] | None = None


# Agents' errors used to start with this, which every renderer then said again
_ATTEMPTS = re.compile(r"^failed after \d+ attempt\(s\): ")


def without_attempts(error: str | None) -> str | None:
    """An agent's error without the "failed after N attempt(s): " older traces begin it with
    (the number of attempts is a field of its own)."""
    return _ATTEMPTS.sub("", error) if error else error


def _people(org: Org, items: list[str]) -> str:
    return ", ".join(org.display(p) for p in items) or "nobody"


# -- the timeline's lines -------------------------------------------------------------------
def _asked_through(d: Data) -> str:
    """For a token's run: " through MCP (stdio) (token claude)", or the API; else nothing."""
    origin = d.get("origin") if isinstance(d.get("origin"), dict) else {}
    door = through_words(origin)
    return f" through {door} (token {origin.get('token', '?')})" if door else ""


def _run_started(d: Data, actor: str, org: Org) -> str:
    inputs = values(d.get("inputs", {}))
    return (f"started {d['flow']} (v{d.get('version')}) by {org.display(actor)}"
            f"{_asked_through(d)} with {inputs}")


def _signal(d: Data, actor: str, org: Org) -> str:
    text = f"signal {d['agent']}: {d.get('verdict') or '-'}"
    if d.get("severity") and d.get("verdict") not in (None, "", "ok"):
        text += f"/{d['severity']}"
    if d.get("confidence") is not None and d.get("verdict"):
        text += f" ({d['confidence']:.0%})"
    text += f" - {d.get('summary') or ''}".rstrip(" -")
    if d.get("output", {}).get("branch"):
        text += f" -> branch {d['output']['branch']}"
    if d.get("attempts", 1) > 1:
        text += f" [{d['attempts']} attempts]"
    if d.get("tokens_in") or d.get("tokens_out"):
        cost = d.get("cost", 0) or 0
        price = "$0" if not cost else f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"
        text += (f" [{d.get('tokens_in', 0)}+{d.get('tokens_out', 0)} tokens, "
                 f"{price}, {d.get('latency_ms', 0):.0f} ms]")
    return text


def _conflict(d: Data, actor: str, org: Org) -> str:
    if d.get("agreed"):
        return (f"conflict '{d['conflict']}': signals agree - {d['why']}"
                + (f"; {d['then']}" if d.get("then") else ""))
    if d.get("skipped"):
        return f"conflict '{d['conflict']}' skipped: {d['why']}; {d.get('then', '')}"
    tail = f"; winner {d['winner']}" if d.get("winner") else ""
    if d.get("then"):
        tail += f"; {d['then']}"
    return f"conflict '{d['conflict']}': {d['why']} (policy {d['policy']}){tail}"


def _boundary(d: Data, actor: str, org: Org) -> str:
    state = "passed" if d["passed"] else "VIOLATED"
    extra = f" ({values(d['values'])})" if d.get("values") else ""
    if "limit" in d:
        extra = f" ({number(d['value'])} of {number(d['limit'])})"
    text = f"boundary {d['boundary']} {state}: {d.get('check', d.get('message', ''))}{extra}"
    if d.get("result") == "allowed":
        text += " -> allowed once already for these values"
    elif d.get("result") == "deferred":
        text += " -> checked when the run reaches it"
    elif not d["passed"]:
        text += f" -> {d.get('on_violation')}"
    if d.get("recheck"):
        about = d["recheck"]
        text += (f" (re-check: {', '.join(about.get('edited', [])) or 'inputs'} edited by "
                 f"{org.display(about.get('by') or '?')} at '{about.get('gate')}')")
    return text


def _gate_opened(d: Data, actor: str, org: Org) -> str:
    people = ", ".join(org.display(p) for p in d.get("approvers", [])) or "nobody"
    text = f"gate '{d['gate']}' opened ({d['kind']}): {d['title']} - can decide: {people}"
    if d.get("quorum", 1) > 1:
        text += f"; quorum {d['quorum']}"
    if d.get("escalation"):
        text += f"; escalation {d['escalation']['chain']} until {deadline(d['escalation']['deadline'])}"
    if d.get("required_by"):
        need = d["required_by"]
        text += (f"; needed because conflict '{need['conflict']}' followed "
                 f"{need.get('winner') or 'no signal'} ({need.get('verdict') or '-'})")
    if d.get("edited_by"):
        text += ("; needed because of values edited by "
                 + ", ".join(org.display(p) for p in d["edited_by"]) + ", who do not decide it")
    return text


def _decision(d: Data, actor: str, org: Org) -> str:
    text = f"{org.display(actor)} chose {d['option']} at '{d['gate']}'"
    if d.get("reason"):
        text += f': "{d["reason"]}"'
    for name, change in d.get("edits", {}).items():
        text += f"; edited {name} {number(change['from'])} -> {number(change['to'])}"
    return text


def _gate_decided(d: Data, actor: str, org: Org) -> str:
    by = ", ".join(org.display(p) for p in d.get("decided_by", [])) or None
    # a conflict names its winner: only an approval gate "approves"
    settled = gate_outcome(d["outcome"], d.get("option"), by, d.get("why", ""),
                           "conflict" if d.get("winner") else "approval")
    text = f"gate '{d['gate']}' decided: {settled}"
    for name, change in d.get("approved_inputs", {}).items():
        text += f"; {name} requested {number(change['requested'])}, approved {number(change['approved'])}"
    if d.get("winner"):
        text += f"; following {d['winner']}"
    if d.get("then"):
        text += f": {d['then']}"
    return text


def _held_until(kind: str) -> Line:
    def line(d: Data, actor: str, org: Org) -> str:
        text = f"{org.display(actor)} {kind} '{d['gate']}' until {deadline(d['until'])}"
        if d.get("deadline") and d["deadline"] != d["until"]:
            text += f"; next step {deadline(d['deadline'])}"
        if d.get("capped"):
            text += f" (held to the cap: the level ends by {deadline(d.get('latest'))} at the latest)"
        return text
    return line


def _action_done(d: Data, actor: str, org: Org) -> str:
    by = f" (reported by {org.display(actor)})" if d.get("reported_by") else ""
    result = d.get("result")
    return f"action '{d['action']}' done{by}: {values(result) if isinstance(result, dict) else result}"


def _callback(state: str) -> Line:
    def line(d: Data, actor: str, org: Org) -> str:
        detail = f"HTTP {d['status']}" if d.get("status") else ""
        if d.get("error"):
            detail = d["error"]
        return (f"callback {d['type']} {d['event_id']} to {d.get('host')} {state} "
                f"(attempt {d['attempt']})" + (f": {detail}" if detail else ""))
    return line


# -- the console's lines (what `baton run` prints as it happens) -----------------------------
def _console_gate_opened(d: Data, actor: str, org: Org) -> str:
    what = "conflict" if d.get("kind") == "conflict" else "gate"
    due = (f", next step {deadline(d['escalation']['deadline'])}" if d.get("escalation")
           else "")
    return (f"waiting at {what} '{d['gate']}': {d['title']} "
            f"(can decide: {_people(org, d['approvers'])}{due})")


def _console_gate_decided(d: Data, actor: str, org: Org) -> str:
    who = _people(org, d["decided_by"]) if d["decided_by"] else None
    settled = gate_outcome(d["outcome"], d.get("option"), who, d["why"], d.get("kind", "approval"))
    return f"gate '{d['gate']}': {settled}"


def _console_escalated(d: Data, actor: str, org: Org) -> str:
    return (f"escalated '{d['gate']}' to level {d['level']} "
            f"({', '.join(d['notify'])}): {d['why']}; next step {deadline(d.get('deadline'))}")


def _console_reminder(d: Data, actor: str, org: Org) -> str:
    return f"reminder for '{d['gate']}' to {', '.join(d['notify'])}"


def _console_snoozed(d: Data, actor: str, org: Org) -> str:
    return (f"'{d['gate']}' snoozed by {org.display(actor)} until {deadline(d['until'])}"
            + (f", next step {deadline(d['deadline'])}" if d.get("deadline") else ""))


def _console_halted(d: Data, actor: str, org: Org) -> str:
    return f"Baton halted by {org.display(actor)}" + (f": {d['reason']}" if d.get("reason") else "")


# -- Slack's thread notes -------------------------------------------------------------------
def _slack_snoozed(d: Data, actor: str, say: Voice) -> str:
    due = f" · next step at {clock_time(d['deadline'])}" if d.get("deadline") else ""
    return f":zzz: {say.person(actor)} snoozed {say.code(d['gate'])} until {clock_time(d['until'])}" + due


def _marked(field: str, default: str = "") -> Callable[[Data], str]:
    return lambda d: str(d.get(field) or default)


KINDS: dict[str, Kind] = {
    "run_started": Kind(
        _run_started, "started",
        console=lambda d, a, org: (f"started: {d['flow']} by {org.display(d['requester'])}"
                                   f"{_asked_through(d)}")),
    "signal": Kind(_signal, _marked("verdict")),
    "agent_failed": Kind(
        lambda d, a, org: (f"agent {d['agent']} FAILED after {count(d.get('attempts', 1), 'attempt')}: "
                           f"{without_attempts(d.get('error'))}"), "failed"),
    "conflict": Kind(_conflict, lambda d: "ok" if d.get("agreed") else "warn"),
    "boundary": Kind(
        _boundary, lambda d: "passed" if d.get("passed") else "violated",
        # announced only when violated; the message may be the event's (events.EXTRAS)
        console=lambda d, a, org: f"boundary {d['boundary']} violated: {d['message']}",
        slack=lambda d, a, say: (f":no_entry: Boundary {say.code(d['boundary'])} violated → "
                                 f"{say.text(d['on_violation'])}")),
    "gate_skipped": Kind(lambda d, a, org: f"gate '{d['gate']}' not needed: {d['why']}", "skipped"),
    "gate_opened": Kind(_gate_opened, "opened", console=_console_gate_opened),
    "decision": Kind(
        _decision, _marked("effect", "decided"),
        console=lambda d, a, org: (f"{org.display(a)} chose {d['option']} at '{d['gate']}' "
                                   f"({d['approvals']} of {d['quorum']} approvals)")),
    "decision_refused": Kind(
        lambda d, a, org: f"REFUSED {org.display(a)} ({d.get('option')}) at '{d.get('gate')}': {d['why']}",
        "refused"),
    "refused": Kind(lambda d, a, org: f"REFUSED {org.display(a)} {d['action']}: {d['why']}", "refused"),
    "approvals_dismissed": Kind(
        lambda d, a, org: f"approvals by {', '.join(d['dismissed'])} dismissed: {d['why']}", "warn"),
    "gate_decided": Kind(_gate_decided, _marked("outcome", "decided"), console=_console_gate_decided),
    "escalated": Kind(
        lambda d, a, org: (f"escalated '{d['gate']}' to level {d['level']} ({', '.join(d['notify'])}): "
                           f"{d['why']}"), "escalated", console=_console_escalated),
    "escalation_exhausted": Kind(
        lambda d, a, org: f"escalation of '{d['gate']}' exhausted: {d['why']}", "escalated",
        console=lambda d, a, org: f"escalation of '{d['gate']}' ended ({d['final']}): {d['why']}"),
    "escalation_requested": Kind(
        lambda d, a, org: f"{org.display(a)} asked to escalate '{d['gate']}'", "escalated"),
    "reminder": Kind(
        lambda d, a, org: f"reminded level {d['level']} ({', '.join(d['notify'])}) about '{d['gate']}'",
        "reminder", console=_console_reminder),
    "claimed": Kind(
        _held_until("claimed"), "claimed",
        console=lambda d, a, org: f"'{d['gate']}' claimed by {org.display(a)} until {deadline(d['until'])}",
        slack=lambda d, a, say: (f":raising_hand: {say.person(a)} is on it "
                                 f"(pings paused until {clock_time(d['until'])})")),
    "snoozed": Kind(_held_until("snoozed"), "snoozed", console=_console_snoozed, slack=_slack_snoozed),
    "snooze_ended": Kind(
        lambda d, a, org: f"snooze of '{d['gate']}' ended; level {d['level']} notified again",
        "reminder", console=_console_reminder),
    "reassigned": Kind(
        lambda d, a, org: f"{org.display(a)} reassigned '{d['gate']}' to {org.display(d['to'])}",
        "reassigned",
        console=lambda d, a, org: f"'{d['gate']}' reassigned to {org.display(d['to'])} by {org.display(a)}",
        slack=lambda d, a, say: f":arrow_right: {say.person(a)} asked {say.person(d['to'])} to decide"),
    "route": Kind(lambda d, a, org: (f"route '{d['route']}' round {d['round']}: {d['router']} chose "
                                     f"{d['branch']} - {d.get('why')}"), "route"),
    "route_refused": Kind(
        lambda d, a, org: (f"route '{d['route']}': REFUSED branch {d['branch']!r} from {d['router']} "
                           f"(allowed: {', '.join(d['allowed'])})"), "refused"),
    "plan": Kind(lambda d, a, org: (f"plan '{d['plan']}': {d['planner']} planned {len(d['subtasks'])} "
                                    f"subtasks for {d['executor']} -> {d.get('verdict')}: {d['summary']}")),
    "action_started": Kind(
        lambda d, a, org: (f"action '{d['action']}' started ({d['call']}, key {d['idempotency_key']})"
                           + (f" - {d['why']}" if d.get("why") else "")), "started"),
    "action_due": Kind(
        lambda d, a, org: (f"action '{d['action']}' approved for the caller: "
                           f"{d['tool']}({values(d.get('arguments', {}))}), "
                           f"approval {d['approval']}, report by {deadline(d['deadline'])}"), "approve"),
    "action_done": Kind(_action_done, "done"),
    "action_report_refused": Kind(lambda d, a, org: f"REFUSED report by {org.display(a)}: {d['why']}",
                                  "refused"),
    "callback_delivered": Kind(_callback("delivered"), "done"),
    "callback_failed": Kind(_callback("failed"), "warn"),
    "callback_abandoned": Kind(_callback("abandoned"), "failed"),
    "action_failed": Kind(lambda d, a, org: f"action '{d['action']}' FAILED: {d.get('error')}", "failed"),
    "action_unknown": Kind(lambda d, a, org: f"action '{d['action']}' outcome UNKNOWN: {d['why']}", "warn"),
    "action_skipped": Kind(lambda d, a, org: f"action '{d['action']}' skipped: {d['why']}", "skipped"),
    "run_held": Kind(lambda d, a, org: f"held: {d['why']}", "held",
                     console=lambda d, a, org: f"held: {d['why']}"),
    "run_resumed": Kind(lambda d, a, org: f"resumed: {d['why']}", "started"),
    "run_finished": Kind(
        lambda d, a, org: (f"finished: {d['status']} - {d['why']} ({seconds(d['duration_s'])}, "
                           f"{count(d['steps'], 'step')})"), _marked("status"),
        console=lambda d, a, org: f"{d['status']}: {d['why']}"),
    "halted": Kind(
        lambda d, a, org: f"halted: {d}", console=_console_halted,
        slack=lambda d, a, say: (f":octagonal_sign: *Baton halted* by {say.person(a)}: no new runs "
                                 "and no actions until an admin resumes")),
    "resumed": Kind(
        lambda d, a, org: f"resumed: {d}",
        console=lambda d, a, org: f"Baton resumed by {org.display(a)}",
        slack=lambda d, a, say: f":arrow_forward: *Baton resumed* by {say.person(a)}"),
}


def line(kind: str, data: Data, actor: str, org: Org) -> str:
    """The timeline's words for an entry (a kind this Baton does not know: its data)."""
    found = KINDS.get(kind)
    return found.line(data, actor, org) if found else f"{kind}: {data}"


def mark(kind: str, data: Data) -> str:
    found = KINDS.get(kind)
    if found is None:
        return ""
    return found.mark if isinstance(found.mark, str) else found.mark(data)
