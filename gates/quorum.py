"""Counting votes on a gate: quorum, distinct approvers, who ends it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gates.options import Effect


@dataclass(frozen=True)
class Vote:
    decider: str
    option: str
    effect: Effect


@dataclass(frozen=True)
class Tally:
    outcome: Effect | None  # None while the gate stays open
    option: str | None  # the option that settled it
    approvals: tuple[str, ...]
    rejections: tuple[str, ...]
    quorum: int
    explanation: str


def tally(votes: Iterable[Vote], *, quorum: int, reject_ends: bool,
          eligible: set[str], name: Callable[[str], str] = str) -> Tally:
    """Decide a gate from its counted votes (one per person, already deduplicated).

    Any request for changes (or a retry) sends the run back. A rejection ends the gate when
    `reject_ends`; otherwise it only counts against, and the gate is rejected once the
    approvers who have not voted can no longer make up the quorum.
    """
    votes = list(votes)
    approvals = tuple(v.decider for v in votes if v.effect == "approve")
    rejections = tuple(v.decider for v in votes if v.effect == "reject")
    # Sending the run back (for changes, or to retry a step) takes one person, like a reject.
    back = [v for v in votes if v.effect in ("request_changes", "retry")]

    def result(outcome: Effect | None, option: str | None, why: str) -> Tally:
        return Tally(outcome, option, approvals, rejections, quorum, why)

    if back:
        last = back[-1]
        what = "requested changes" if last.effect == "request_changes" else "asked to retry"
        return result(last.effect, last.option, f"{name(last.decider)} {what}")
    if rejections and reject_ends:
        reject = next(v for v in votes if v.effect == "reject")
        return result("reject", reject.option, f"rejected by {name(reject.decider)}")
    if len(approvals) >= quorum:
        last = [v for v in votes if v.effect == "approve"][-1]
        who = ", ".join(name(a) for a in approvals)
        return result("approve", last.option,
                      f"approved by {who}" + (f" ({len(approvals)} of {quorum} needed)"
                                              if quorum > 1 else ""))
    voted = {v.decider for v in votes}
    still_possible = len(approvals) + len(eligible - voted)
    if rejections and still_possible < quorum:
        reject = next(v for v in votes if v.effect == "reject")
        return result("reject", reject.option,
                      f"rejected: {len(rejections)} rejection(s) leave {still_possible} possible "
                      f"approvals, fewer than the {quorum} needed")
    return result(None, None, f"{len(approvals)} of {quorum} approvals")
