from datetime import UTC, datetime, timedelta

import pytest

from gates import escalation as esc
from gates.durations import format_duration, parse_duration

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CHAIN = esc.Chain("finance", (
    esc.Level(("role:finance-approver",), timedelta(minutes=30), timedelta(minutes=10)),
    esc.Level(("role:finance-lead",), timedelta(hours=1)),
), repeat=1, final="reject")


def test_levels_then_repeat_then_fail_closed() -> None:
    first = esc.start(CHAIN, T0)
    assert (first.level, first.cycle, first.deadline) == (0, 0, T0 + timedelta(minutes=30))
    assert first.remind_at == T0 + timedelta(minutes=20)
    second = esc.advance(CHAIN, 0, 0, first.deadline)
    assert isinstance(second, esc.Position) and second.level == 1 and second.remind_at is None
    again = esc.advance(CHAIN, 1, 0, second.deadline)
    assert isinstance(again, esc.Position) and (again.level, again.cycle) == (0, 1)
    last = esc.advance(CHAIN, 1, 1, T0)
    assert isinstance(last, esc.Exhausted) and last.final == "reject"
    assert "2 rounds" in last.explanation and "3h" in last.explanation


def test_chain_survives_a_round_trip_through_json() -> None:
    assert esc.Chain.from_dict(CHAIN.as_dict()) == CHAIN


def test_snooze_only_from_the_fixed_list() -> None:
    assert esc.snooze_choice(CHAIN, timedelta(hours=1)) == timedelta(hours=1)
    with pytest.raises(ValueError, match="15m, 1h, 4h, 1d"):
        esc.snooze_choice(CHAIN, timedelta(days=365))


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1h30m", 5400),
                                               ("2d", 172800), ("0.5s", 0.5), (45, 45)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "soon", "10 parsecs", "-5m", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_format_duration() -> None:
    assert format_duration(timedelta(minutes=90)) == "1h30m"


# -- claims and snoozes: never earlier, never forever -----------------------------------------
M = timedelta(minutes=1)
CAPPED = esc.Chain("finance", CHAIN.levels, repeat=1, final="reject",
                   max_postpone=timedelta(hours=2))


def test_a_postponement_never_brings_the_next_step_forward() -> None:
    due = T0 + 30 * M
    move = esc.postpone(CAPPED, T0, 0, 0, due, T0 + 15 * M)  # a 15m snooze, 30m to go
    assert (move.deadline, move.moved, move.capped) == (due, timedelta(0), False)
    later = esc.postpone(CAPPED, T0, 0, 0, due, T0 + 90 * M)
    assert (later.deadline, later.moved, later.capped) == (T0 + 90 * M, 60 * M, False)


def test_the_cap_holds_each_level_to_its_schedule_plus_max_postpone() -> None:
    # level 1 ends at +30m on schedule: at most +2h30m, whatever is asked
    move = esc.postpone(CAPPED, T0, 0, 0, T0 + 30 * M, T0 + timedelta(days=1))
    assert move.deadline == move.latest == T0 + 150 * M and move.capped
    # level 2 of round 2 ends on schedule at 30m + 1h + 30m + 1h = 3h
    assert esc.scheduled_end(CAPPED, T0, 1, 1) == T0 + 180 * M
    assert esc.postpone(CAPPED, T0, 1, 1, T0 + 200 * M, T0 + 1000 * M).deadline == T0 + 300 * M
    # already past the limit (a level that started late): it stays, it does not move earlier
    assert esc.postpone(CAPPED, T0, 0, 0, T0 + 200 * M, T0 + 201 * M).deadline == T0 + 200 * M


def test_people_postponing_in_turn_cannot_keep_the_chain_from_its_final_step() -> None:
    """A minute before each next step, someone snoozes 1h again, for ever: every level ends
    once the cap is spent, and the chain fails closed at most max_postpone after its own
    schedule."""
    level, cycle, deadline = 0, 0, esc.start(CAPPED, T0).deadline
    snoozes = 0
    for _ in range(10_000):
        move = esc.postpone(CAPPED, T0, level, cycle, deadline, deadline - M + timedelta(hours=1))
        if move.moved:
            deadline, snoozes = move.deadline, snoozes + 1
            continue
        step = esc.advance(CAPPED, level, cycle, deadline)  # the chain moves on
        if isinstance(step, esc.Exhausted):
            break
        level, cycle, deadline = step.level, step.cycle, step.deadline
    else:
        raise AssertionError("the chain never reached its final step")
    schedule = esc.scheduled_end(CAPPED, T0, len(CAPPED.levels) - 1, CAPPED.repeat)
    assert step.final == "reject" and snoozes > 0
    assert deadline == schedule + CAPPED.max_postpone


def test_the_cap_survives_a_round_trip_and_old_gates_get_the_default() -> None:
    assert esc.Chain.from_dict(CAPPED.as_dict()).max_postpone == timedelta(hours=2)
    old = {k: v for k, v in CHAIN.as_dict().items() if k != "max_postpone"}
    assert esc.Chain.from_dict(old).max_postpone == timedelta(days=1)
