"""The console notifier: what the CLI prints as a run moves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gates.org import Org
from orchestrator.events import DomainEvent
from orchestrator.wording import deadline, gate_outcome


def _people(org: Org, items: list[str]) -> str:
    return ", ".join(org.display(p) for p in items) or "nobody"


def describe(event: DomainEvent, org: Org) -> str:
    """One line per event, in plain words."""
    p: dict[str, Any] = event.payload
    run = p.get("run") or ""
    kind = event.kind
    if kind == "run_started":
        return f"{run} started: {p['flow']} by {org.display(p['requester'])}"
    if kind in ("gate_opened", "conflict_opened"):
        what = "conflict" if kind == "conflict_opened" else "gate"
        due = f", next step {deadline(p['deadline'])}" if p.get("deadline") else ""
        return (f"{run} waiting at {what} '{p['gate']}': {p['title']} "
                f"(can decide: {_people(org, p['approvers'])}{due})")
    if kind == "vote_recorded":
        return (f"{run} {org.display(p['by'])} chose {p['option']} at '{p['gate']}' "
                f"({p['approvals']} of {p['quorum']} approvals)")
    if kind == "gate_decided":
        who = _people(org, p["decided_by"]) if p["decided_by"] else None
        settled = gate_outcome(p["outcome"], p.get("option"), who, p["why"], p.get("kind", "approval"))
        return f"{run} gate '{p['gate']}': {settled}"
    if kind == "escalated":
        if p.get("final"):
            return f"{run} escalation of '{p['gate']}' ended ({p['final']}): {p['why']}"
        return (f"{run} escalated '{p['gate']}' to level {p['level']} "
                f"({', '.join(p['notify'])}): {p['why']}; next step {deadline(p.get('deadline'))}")
    if kind == "reminder":
        return f"{run} reminder for '{p['gate']}' to {', '.join(p['notify'])}"
    if kind == "claimed":
        return f"{run} '{p['gate']}' claimed by {org.display(p['by'])} until {deadline(p['until'])}"
    if kind == "snoozed":
        return (f"{run} '{p['gate']}' snoozed by {org.display(p['by'])} until {deadline(p['until'])}"
                + (f", next step {deadline(p['deadline'])}" if p.get("deadline") else ""))
    if kind == "reassigned":
        return f"{run} '{p['gate']}' reassigned to {org.display(p['to'])} by {org.display(p['by'])}"
    if kind == "boundary_violated":
        return f"{run} boundary {p['boundary']} violated: {p['message']}"
    if kind == "run_held":
        return f"{run} held: {p['why']}"
    if kind in ("run_finished", "run_failed", "run_stopped"):
        return f"{run} {p['status']}: {p['why']}"
    if kind == "halted":
        return f"Baton halted by {org.display(p['by'])}" + (f": {p['reason']}" if p.get("reason") else "")
    if kind == "resumed":
        return f"Baton resumed by {org.display(p['by'])}"
    return f"{run} {kind}"


class ConsoleNotifier:
    def __init__(self, org: Org, write: Callable[[str], None]) -> None:
        self.org = org
        self.write = write

    def notify(self, event: DomainEvent) -> None:
        self.write(describe(event, self.org))
