"""A run's trace as a readable timeline: one line per entry, saying what happened, who
did it and why. Shared by the CLI and the Slack bot."""

from __future__ import annotations

import re
from typing import Any

from gates.org import Org
from orchestrator.wording import count, deadline, gate_outcome, number, seconds, values
from storage.models import TraceEntry

# Agents' errors used to start with this, which every renderer then said again
_ATTEMPTS = re.compile(r"^failed after \d+ attempt\(s\): ")


def without_attempts(error: str | None) -> str | None:
    """An agent's error without the "failed after N attempt(s): " older traces begin it with
    (the number of attempts is a field of its own)."""
    return _ATTEMPTS.sub("", error) if error else error


# How each kind of entry went, drawn as an emoji in Slack (bot.render.trace)
_MARKS = {"run_started": "started", "agent_failed": "failed", "decision_refused": "refused",
          "refused": "refused", "approvals_dismissed": "warn", "gate_opened": "opened",
          "gate_skipped": "skipped", "escalated": "escalated", "escalation_exhausted": "escalated",
          "escalation_requested": "escalated", "reminder": "reminder", "claimed": "claimed",
          "snoozed": "snoozed", "snooze_ended": "reminder", "reassigned": "reassigned",
          "route": "route", "route_refused": "refused", "action_started": "started",
          "action_done": "done", "action_failed": "failed", "action_unknown": "warn",
          "action_skipped": "skipped", "run_held": "held", "run_resumed": "started",
          "action_due": "approve", "action_report_refused": "refused", "callback_delivered": "done",
          "callback_failed": "warn", "callback_abandoned": "failed"}


def mark(entry: TraceEntry) -> str:
    d = entry.data
    if entry.kind == "signal":
        return str(d.get("verdict") or "")
    if entry.kind == "conflict":
        return "ok" if d.get("agreed") else "warn"
    if entry.kind == "boundary":
        return "passed" if d.get("passed") else "violated"
    if entry.kind == "decision":
        return str(d.get("effect") or "decided")
    if entry.kind == "gate_decided":
        return str(d.get("outcome") or "decided")
    if entry.kind == "run_finished":
        return str(d.get("status") or "")
    return _MARKS.get(entry.kind, "")


def describe(entry: TraceEntry, org: Org) -> str:
    d: dict[str, Any] = entry.data
    who = org.display(entry.actor)
    k = entry.kind
    if k == "run_started":
        inputs = values(d.get("inputs", {}))
        return f"started {d['flow']} (v{d.get('version')}) by {who} with {inputs}"
    if k == "signal":
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
    if k == "agent_failed":
        return (f"agent {d['agent']} FAILED after {count(d.get('attempts', 1), 'attempt')}: "
                f"{without_attempts(d.get('error'))}")
    if k == "conflict":
        if d.get("agreed"):
            return (f"conflict '{d['conflict']}': signals agree - {d['why']}"
                    + (f"; {d['then']}" if d.get("then") else ""))
        if d.get("skipped"):
            return f"conflict '{d['conflict']}' skipped: {d['why']}; {d.get('then', '')}"
        tail = f"; winner {d['winner']}" if d.get("winner") else ""
        if d.get("then"):
            tail += f"; {d['then']}"
        return f"conflict '{d['conflict']}': {d['why']} (policy {d['policy']}){tail}"
    if k == "boundary":
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
    if k == "gate_skipped":
        return f"gate '{d['gate']}' not needed: {d['why']}"
    if k == "gate_opened":
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
    if k == "decision":
        text = f"{who} chose {d['option']} at '{d['gate']}'"
        if d.get("reason"):
            text += f': "{d["reason"]}"'
        for name, change in d.get("edits", {}).items():
            text += f"; edited {name} {number(change['from'])} -> {number(change['to'])}"
        return text
    if k == "decision_refused":
        return f"REFUSED {who} ({d.get('option')}) at '{d.get('gate')}': {d['why']}"
    if k == "refused":
        return f"REFUSED {who} {d['action']}: {d['why']}"
    if k == "approvals_dismissed":
        return f"approvals by {', '.join(d['dismissed'])} dismissed: {d['why']}"
    if k == "gate_decided":
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
    if k == "escalated":
        return (f"escalated '{d['gate']}' to level {d['level']} ({', '.join(d['notify'])}): "
                f"{d['why']}")
    if k == "escalation_exhausted":
        return f"escalation of '{d['gate']}' exhausted: {d['why']}"
    if k == "escalation_requested":
        return f"{who} asked to escalate '{d['gate']}'"
    if k == "reminder":
        return f"reminded level {d['level']} ({', '.join(d['notify'])}) about '{d['gate']}'"
    if k in ("claimed", "snoozed"):
        text = f"{who} {k} '{d['gate']}' until {deadline(d['until'])}"
        if d.get("deadline") and d["deadline"] != d["until"]:
            text += f"; next step {deadline(d['deadline'])}"
        if d.get("capped"):
            text += f" (held to the cap: the level ends by {deadline(d.get('latest'))} at the latest)"
        return text
    if k == "snooze_ended":
        return f"snooze of '{d['gate']}' ended; level {d['level']} notified again"
    if k == "reassigned":
        return f"{who} reassigned '{d['gate']}' to {org.display(d['to'])}"
    if k == "route":
        return f"route '{d['route']}' round {d['round']}: {d['router']} chose {d['branch']} - {d.get('why')}"
    if k == "route_refused":
        return (f"route '{d['route']}': REFUSED branch {d['branch']!r} from {d['router']} "
                f"(allowed: {', '.join(d['allowed'])})")
    if k == "plan":
        return (f"plan '{d['plan']}': {d['planner']} planned {len(d['subtasks'])} subtasks for "
                f"{d['executor']} -> {d.get('verdict')}: {d['summary']}")
    if k == "action_started":
        return f"action '{d['action']}' started ({d['call']}, key {d['idempotency_key']})" + (
            f" - {d['why']}" if d.get("why") else "")
    if k == "action_due":
        args = values(d.get("arguments", {}))
        return (f"action '{d['action']}' approved for the caller: {d['tool']}({args}), "
                f"approval {d['approval']}, report by {deadline(d['deadline'])}")
    if k == "action_done":
        by = f" (reported by {who})" if d.get("reported_by") else ""
        result = d.get("result")
        return f"action '{d['action']}' done{by}: {values(result) if isinstance(result, dict) else result}"
    if k == "action_report_refused":
        return f"REFUSED report by {who}: {d['why']}"
    if k in ("callback_delivered", "callback_failed", "callback_abandoned"):
        state = {"callback_delivered": "delivered", "callback_failed": "failed",
                 "callback_abandoned": "abandoned"}[k]
        detail = f"HTTP {d['status']}" if d.get("status") else ""
        if d.get("error"):
            detail = d["error"]
        return (f"callback {d['type']} {d['event_id']} to {d.get('host')} {state} "
                f"(attempt {d['attempt']})" + (f": {detail}" if detail else ""))
    if k == "action_failed":
        return f"action '{d['action']}' FAILED: {d.get('error')}"
    if k == "action_unknown":
        return f"action '{d['action']}' outcome UNKNOWN: {d['why']}"
    if k == "action_skipped":
        return f"action '{d['action']}' skipped: {d['why']}"
    if k == "run_held":
        return f"held: {d['why']}"
    if k == "run_resumed":
        return f"resumed: {d['why']}"
    if k == "run_finished":
        return (f"finished: {d['status']} - {d['why']} ({seconds(d['duration_s'])}, "
                f"{count(d['steps'], 'step')})")
    return f"{k}: {d}"


def lines(entries: list[TraceEntry], org: Org) -> list[str]:
    return [f"{e.created_at:%Y-%m-%d %H:%M:%S} #{e.seq:<3} {describe(e, org)}" for e in entries]
