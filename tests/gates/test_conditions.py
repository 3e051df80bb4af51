from datetime import UTC, datetime

import pytest

from gates.conditions import ConditionError, check_against, compile_condition

CTX = {"inputs": {"amount": 20000.0, "vendor": "ACME"},
       "signals": {"risk": {"verdict": "ok", "severity_level": 0}},
       "run": {"id": "R-1"}, "gates": {}, "conflicts": {},
       "now": datetime(2026, 1, 1, tzinfo=UTC)}


def test_condition_evaluates_over_the_documented_context() -> None:
    cond = compile_condition("inputs.amount > 10000 || signals.risk.verdict != 'ok'")
    assert cond.is_true(CTX) is True
    assert cond.is_true({**CTX, "inputs": {"amount": 5.0}}) is False


def test_a_condition_given_only_the_names_it_reads_answers_as_with_everything() -> None:
    """CEL is handed only the values an expression names; what it gives, errors included,
    must not change (a comprehension variable may even shadow a context name)."""
    sources = ["inputs.amount > 10000", "signals.risk.verdict == 'ok' && run.id == 'R-1'",
               "inputs.vendor.matches('(?i)acme')", "has(inputs.missing)", "true",
               "[1, 2].exists(now, now > 1)", "now > timestamp('2025-01-01T00:00:00Z')"]
    for source in sources:
        cond = compile_condition(source)
        assert cond.evaluate(CTX) == cond.program.execute(dict(CTX)), source
    assert compile_condition("true").names == ()
    assert set(compile_condition("signals.risk.verdict == 'ok' && now > run.started_at").names) \
        == {"signals", "now", "run"}
    with pytest.raises(ConditionError, match="refers to 'missing'"):
        compile_condition("inputs.missing > 1").is_true(CTX)


@pytest.mark.parametrize(("source", "fragment"), [
    ("inputs.amount >", "is not valid CEL"),
    ("input.amount > 1", "unknown name 'input'"),
    ("bogus(inputs.amount)", "unknown function 'bogus'"),
    ("", "empty"),
])
def test_bad_expressions_fail_at_compile_time(source: str, fragment: str) -> None:
    with pytest.raises(ConditionError, match=fragment):
        compile_condition(source)


def test_sample_check_catches_misspelt_fields_and_type_errors() -> None:
    with pytest.raises(ConditionError, match="amout"):
        check_against(compile_condition("inputs.amout > 1"), [CTX])
    with pytest.raises(ConditionError, match="failed"):
        check_against(compile_condition("inputs.vendor + 1 == 2"), [CTX])
    with pytest.raises(ConditionError, match="not true/false"):
        check_against(compile_condition("inputs.amount"), [CTX])


def test_comprehension_variables_are_not_unknown_names() -> None:
    cond = compile_condition("[1, 2].exists(x, x > 1) && inputs.amount > 0.0")
    assert cond.is_true(CTX)


def test_runtime_error_is_a_condition_error_with_the_source() -> None:
    cond = compile_condition("signals.compliance.verdict == 'ok'")
    with pytest.raises(ConditionError, match="compliance"):
        cond.is_true(CTX)


def test_non_boolean_result_is_refused() -> None:
    with pytest.raises(ConditionError, match="true or false"):
        compile_condition("inputs.vendor").is_true(CTX)


def test_references_name_the_values_read() -> None:
    cond = compile_condition("inputs.amount <= 50000.0 && signals.risk.verdict == 'ok'")
    assert cond.references() == ["inputs.amount", "signals.risk.verdict"]
