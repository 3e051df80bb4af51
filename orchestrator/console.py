"""The console notifier: what the CLI prints as a run moves (its words: orchestrator.kinds)."""

from __future__ import annotations

from collections.abc import Callable

from gates.org import Org
from orchestrator.events import DomainEvent
from orchestrator.kinds import KINDS


def describe(event: DomainEvent, org: Org) -> str:
    """One line per event, in plain words: the console's words for the entry it reports."""
    found = KINDS.get(event.entry)
    if found is None or found.console is None:
        return f"{event.run_ref or ''} {event.kind}"
    text = found.console({**event.data, **event.extra}, event.actor, org)
    return f"{event.run_ref} {text}" if event.run_ref else text


class ConsoleNotifier:
    def __init__(self, org: Org, write: Callable[[str], None]) -> None:
        self.org = org
        self.write = write

    def notify(self, event: DomainEvent) -> None:
        self.write(describe(event, self.org))
