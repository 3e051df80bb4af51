"""How facts read, the same wherever people read them (the CLI, `baton trace`, the console
lines of `baton run`, Slack): durations, numbers and times in one format each."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gates.durations import format_duration


def seconds(value: float | None) -> str:
    """A duration: `0.4s`, `5.9s`, `42s`, then `1m7s`, `2h30m`, `1d4h` (as flow files write
    them)."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.1f}s"
    if value < 60:
        return f"{round(value)}s"
    return format_duration(timedelta(seconds=round(value)))


def number(value: Any) -> str:
    """A value as people read it: `20,000` (not `20000.0`), `1,234.5`; text as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return f"{value:,}"


def values(named: Mapping[str, Any]) -> str:
    """`vendor=ACME, amount=20,000`."""
    return ", ".join(f"{name}={number(value)}" for name, value in named.items())


def _utc(at: datetime | str) -> datetime:
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at.astimezone(UTC) if at.tzinfo else at  # stored times are naive UTC


def moment(at: datetime | str | None) -> str:
    """When something happened, to the second: `2026-01-05 09:12:00 UTC`."""
    return "-" if at is None else f"{_utc(at):%Y-%m-%d %H:%M:%S} UTC"


def deadline(at: datetime | str | None) -> str:
    """When something is due, to the minute: `2026-01-05 09:30 UTC`."""
    return "-" if at is None else f"{_utc(at):%Y-%m-%d %H:%M} UTC"


def clock_time(at: datetime | str) -> str:
    """A time within the day it is about: `09:30 UTC`."""
    return f"{_utc(at):%H:%M} UTC"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 attempt`, `3 attempts`, `0 gates` (no "attempt(s)")."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def gate_outcome(outcome: str, option: str | None, deciders: str | None, why: str,
                 kind: str = "approval") -> str:
    """How a gate was settled, each fact once: `approved by Bob Ortiz` (the reason Baton
    recorded already names who and what), `approve_with_conditions: approved by Bob Ortiz`
    (an option of the gate's own), `follow_risk chosen by Frank Li` (only an approval gate
    approves: elsewhere the option chosen says it), `rejected by Baton: no decision after ...`
    (nobody decided)."""
    if not deciders:
        return f"{_PAST.get(outcome, outcome)} by Baton" + (f": {why}" if why else "")
    if kind != "approval":
        return f"{option or outcome} chosen by {deciders}"
    text = why or f"{_PAST.get(outcome, outcome)} by {deciders}"
    return f"{option}: {text}" if option and option != outcome else text


_PAST = {"approve": "approved", "reject": "rejected", "request_changes": "sent back for changes",
         "retry": "sent back to retry"}
