"""Escalation chains: who is pinged next when nobody decides, and when.

A chain is frozen into the gate when it opens (`Chain.as_dict`), so editing the flow file
later does not change gates already waiting. The engine keeps the position (level,
cycle) on the gate and asks this module what comes next; the timers themselves live in
the database.

Semantics, after PagerDuty and Grafana OnCall:
- level 0 is notified when the gate opens; each level waits `wait`, and gets a reminder
  `remind_before` its deadline;
- when a level's wait runs out the next level is notified; people a level names may
  decide from then on (channels are only told);
- after the last level the chain starts again from level 0, `repeat` times;
- then `finally`: `reject` (fail closed, the default) or `hold` (stay open, stop pinging);
- a claim ("I'm on it") stops the pings until `claim_timeout`, then escalation resumes at
  the next level; a snooze stops the pings for one of the `snooze` choices;
- a claim or a snooze can move the chain's next step later, never earlier, and never past
  where the chain's own schedule (its levels' waits from the moment the gate opened) puts
  the end of the current level by more than `max_postpone`: however many people claim or
  snooze in turn, the final step comes at most `max_postpone` after it would have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from gates.durations import format_duration

Final = Literal["reject", "hold"]


@dataclass(frozen=True)
class Level:
    notify: tuple[str, ...]
    wait: timedelta
    remind_before: timedelta | None = None
    can_decide: bool = True


@dataclass(frozen=True)
class Chain:
    name: str
    levels: tuple[Level, ...]
    repeat: int = 0
    final: Final = "reject"
    claim_timeout: timedelta = timedelta(hours=1)
    snooze: tuple[timedelta, ...] = (timedelta(minutes=15), timedelta(hours=1),
                                     timedelta(hours=4), timedelta(days=1))
    max_postpone: timedelta = timedelta(days=1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "levels": [{"notify": list(lv.notify), "wait": lv.wait.total_seconds(),
                        "remind_before": lv.remind_before.total_seconds()
                        if lv.remind_before else None,
                        "can_decide": lv.can_decide} for lv in self.levels],
            "repeat": self.repeat,
            "final": self.final,
            "claim_timeout": self.claim_timeout.total_seconds(),
            "snooze": [s.total_seconds() for s in self.snooze],
            "max_postpone": self.max_postpone.total_seconds(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chain:
        return cls(
            name=data["name"],
            levels=tuple(Level(tuple(lv["notify"]), timedelta(seconds=lv["wait"]),
                               timedelta(seconds=lv["remind_before"])
                               if lv.get("remind_before") else None,
                               lv.get("can_decide", True)) for lv in data["levels"]),
            repeat=data.get("repeat", 0),
            final=data.get("final", "reject"),
            claim_timeout=timedelta(seconds=data.get("claim_timeout", 3600)),
            snooze=tuple(timedelta(seconds=s) for s in data.get("snooze", ())),
            # chains frozen into gates before the cap existed get the default cap
            max_postpone=timedelta(seconds=data.get("max_postpone", 86400)),
        )


@dataclass(frozen=True)
class Position:
    """Where a waiting gate stands in its chain, and its next wake-ups."""

    level: int
    cycle: int
    notify: tuple[str, ...]
    deadline: datetime
    remind_at: datetime | None
    can_decide: bool

    def describe(self, chain: Chain) -> str:
        cycle = f", round {self.cycle + 1} of {chain.repeat + 1}" if chain.repeat else ""
        return f"level {self.level + 1} of {len(chain.levels)}{cycle}"


@dataclass(frozen=True)
class Exhausted:
    final: Final
    explanation: str


def position(chain: Chain, level: int, cycle: int, now: datetime) -> Position:
    lv = chain.levels[level]
    deadline = now + lv.wait
    remind_at = None
    if lv.remind_before and lv.remind_before < lv.wait:
        remind_at = deadline - lv.remind_before
    return Position(level, cycle, lv.notify, deadline, remind_at, lv.can_decide)


def start(chain: Chain, now: datetime) -> Position:
    return position(chain, 0, 0, now)


def advance(chain: Chain, level: int, cycle: int, now: datetime) -> Position | Exhausted:
    """The step after `level` of `cycle` ran out of time."""
    if level + 1 < len(chain.levels):
        return position(chain, level + 1, cycle, now)
    if cycle < chain.repeat:
        return position(chain, 0, cycle + 1, now)
    total = sum((lv.wait for lv in chain.levels), timedelta()) * (chain.repeat + 1)
    rounds = f"{chain.repeat + 1} rounds" if chain.repeat else "one round"
    action = "rejected (fail closed)" if chain.final == "reject" else "held open, pings stopped"
    return Exhausted(chain.final,
                     f"no decision after {rounds} of escalation chain '{chain.name}' "
                     f"({format_duration(total)}): {action}")


def snooze_choice(chain: Chain, wanted: timedelta) -> timedelta:
    """Snoozes come from a fixed list, so a typo cannot silence a gate for a year."""
    if wanted in chain.snooze:
        return wanted
    raise ValueError("snooze for one of: " + ", ".join(format_duration(s) for s in chain.snooze))


@dataclass(frozen=True)
class Postponement:
    """Where a claim or a snooze leaves the chain's next step."""

    deadline: datetime  # the next step: never earlier than it was
    moved: timedelta  # how much later than it was
    latest: datetime  # the latest the current level may end, whatever anyone does
    capped: bool  # the cap kept the next step earlier than asked


def scheduled_end(chain: Chain, opened_at: datetime, level: int, cycle: int) -> datetime:
    """When `level` of round `cycle` ends on the chain's own schedule: nobody claimed or
    snoozed, every level waited its full time from the moment the gate opened."""
    per_round = sum((lv.wait for lv in chain.levels), timedelta())
    return opened_at + per_round * cycle + sum((lv.wait for lv in chain.levels[:level + 1]),
                                               timedelta())


def postpone(chain: Chain, opened_at: datetime, level: int, cycle: int, deadline: datetime,
             wanted: datetime) -> Postponement:
    """Move the next step (due at `deadline`) to `wanted` if that is later, but not past the
    scheduled end of the current level plus `max_postpone`. Each level's limit is its own
    scheduled end plus the same cap, so postponements do not add up from level to level:
    the chain's final step comes at most `max_postpone` after its schedule."""
    latest = scheduled_end(chain, opened_at, level, cycle) + chain.max_postpone
    moved_to = max(deadline, min(wanted, latest))
    return Postponement(moved_to, moved_to - deadline, latest, capped=wanted > moved_to)
