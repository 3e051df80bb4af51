from datetime import UTC, datetime

import pytest

from gates.conditions import ConditionError, Variables, check_against, compile_condition

CTX = {"inputs": {"amount": 20000.0, "vendor": "ACME"},
       "signals": {"risk": {"verdict": "ok", "severity_level": 0}},
       "run": {"id": "R-1"}, "gates": {}, "conflicts": {},
       "now": datetime(2026, 1, 1, tzinfo=UTC)}


def test_condition_evaluates_over_the_documented_context() -> None:
    cond = compile_condition("inputs.amount > 10000 || signals.risk.verdict != 'ok'")
    assert cond.is_true(CTX) is True
    assert cond.is_true({**CTX, "inputs": {"amount": 5.0}}) is False


def test_variables_converted_once_give_what_a_dict_gives_and_are_read_only() -> None:
    """The engine hands every condition of a step one `Variables`; each condition must see
    what it would in a plain dict, errors included, from any number of threads at once."""
    from concurrent.futures import ThreadPoolExecutor

    variables = Variables(CTX)
    sources = ["inputs.amount > 10000", "signals.risk.verdict == 'ok' && run.id == 'R-1'",
               "inputs.vendor.matches('(?i)acme')", "has(inputs.missing)", "now < now"]
    for source in sources:
        cond = compile_condition(source)
        assert cond.evaluate(variables) == cond.evaluate(dict(CTX))
    with pytest.raises(ConditionError, match="refers to 'missing'"):
        compile_condition("inputs.missing > 1").is_true(variables)
    with pytest.raises(ConditionError, match="refers to 'missing'"):
        compile_condition("inputs.missing > 1").is_true(dict(CTX))

    conds = [compile_condition(f"inputs.amount > {n}.0") for n in range(40)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda c: c.is_true(variables), conds * 25))
    assert results == [n < 20000.0 for n in range(40)] * 25

    with pytest.raises(TypeError, match="read-only"):
        variables["inputs"] = {}
    with pytest.raises(TypeError, match="read-only"):
        variables.update(inputs={})
    assert variables == CTX


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
