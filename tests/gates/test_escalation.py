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
