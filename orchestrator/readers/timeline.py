"""A run's trace as a readable timeline: one line per entry, saying what happened, who
did it and why (the words: orchestrator.kinds). Shared by the CLI and the Slack bot."""

from __future__ import annotations

from gates.org import Org
from orchestrator import kinds
from orchestrator.kinds import without_attempts
from storage.models import TraceEntry

__all__ = ["describe", "lines", "mark", "without_attempts"]


def mark(entry: TraceEntry) -> str:
    """How the entry went, drawn as an emoji in Slack (bot.render.trace)."""
    return kinds.mark(entry.kind, entry.data)


def describe(entry: TraceEntry, org: Org) -> str:
    return kinds.line(entry.kind, entry.data, entry.actor, org)


def lines(entries: list[TraceEntry], org: Org) -> list[str]:
    return [f"{e.created_at:%Y-%m-%d %H:%M:%S} #{e.seq:<3} {describe(e, org)}" for e in entries]
