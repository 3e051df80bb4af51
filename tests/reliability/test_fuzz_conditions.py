"""CEL conditions fuzzed (issue 8, item 6): whatever a flow file writes in `when:` or
`check:`, compiling it, checking it against sample contexts and evaluating it either works
or raises ConditionError with a message that quotes the expression. Never another
exception, and never a crash of the process: the parser recurses on the thread's stack."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gates.conditions import ConditionError, check_against, compile_condition
from tests.conftest import ROOT
from tests.figures import Figures
from tests.reliability.conftest import FUZZ

pytestmark = pytest.mark.reliability(
    item="6", promise="Bad input (invalid flow files) gets a clear error naming the problem")

SAMPLES: list[dict[str, Any]] = [
    {"inputs": {"amount": 20000.0, "vendor": "ACME", "count": 3, "urgent": True, "note": ""},
     "signals": {"risk": {"verdict": "warn", "severity": "medium", "severity_level": 2,
                          "confidence": 0.7, "summary": "x", "rationale": "", "failed": False,
                          "branch": None, "evidence": ["a", "b"]}},
     "run": {"id": "R-1", "flow": "f", "requester": "alice", "steps": 3, "tokens": 0,
             "started_at": datetime(2026, 1, 1, tzinfo=UTC), "comments": []},
     "gates": {"approve": {"outcome": "approve", "option": "approve", "decided_by": ["bob"],
                           "reason": None}},
     "conflicts": {}, "now": datetime(2026, 1, 2, tzinfo=UTC)},
    {"inputs": {}, "signals": {}, "run": {}, "gates": {}, "conflicts": {},
     "now": datetime(1970, 1, 1, tzinfo=UTC)},
]

NAMES = ["inputs", "signals", "run", "gates", "conflicts", "now", "x", "input", "__class__", "os"]
FIELDS = ["amount", "vendor", "count", "urgent", "risk", "verdict", "severity_level", "evidence",
          "approve", "outcome", "decided_by", "missing", "size", "__dict__"]
LITERALS = ["0", "1", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
            "18446744073709551615u", "1u", "0.0", "1e308", "1e309", "-0.0", "NaN", "1.5",
            "true", "false", "null", "''", '""', "'ok'", '"\\u0000"', "'\\xff'", "b'\\xff'",
            "r'\\d+'", "'''x'''", "[]", "{}", "[1, 'a', null]", "{'a': 1}", "{1: 2, 1: 3}",
            "timestamp('2026-01-01T00:00:00Z')", "duration('1h')", "duration('-1s')",
            "timestamp('9999-12-31T23:59:59Z')"]
BINARY = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in"]
FUNCTIONS = ["size", "int", "uint", "double", "string", "bytes", "type", "dyn", "timestamp",
             "duration", "has", "matches", "exists", "eval", "getFullYear"]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    """CEL-shaped text: names, member access, literals, operators, calls, macros, ternaries."""
    if depth > 4:
        return draw(st.sampled_from(LITERALS))
    kind = draw(st.integers(0, 9))
    inner = expressions(depth + 1)
    if kind == 0:
        return draw(st.sampled_from(LITERALS))
    if kind == 1:
        path = draw(st.lists(st.sampled_from(FIELDS), max_size=3))
        return ".".join([draw(st.sampled_from(NAMES)), *path])
    if kind == 2:
        return f"{draw(inner)} {draw(st.sampled_from(BINARY))} {draw(inner)}"
    if kind == 3:
        return f"{draw(st.sampled_from(['!', '-', '!!', '--']))}{draw(inner)}"
    if kind == 4:
        args = draw(st.lists(inner, max_size=3))
        return f"{draw(st.sampled_from(FUNCTIONS))}({', '.join(args)})"
    if kind == 5:
        target, method = draw(inner), draw(st.sampled_from(FUNCTIONS + ["contains", "startsWith"]))
        return f"{target}.{method}({draw(inner)})"
    if kind == 6:
        macro = draw(st.sampled_from(["all", "exists", "exists_one", "map", "filter"]))
        var = draw(st.sampled_from(["x", "y", "inputs", "1"]))
        return f"{draw(inner)}.{macro}({var}, {draw(inner)})"
    if kind == 7:
        return f"{draw(inner)} ? {draw(inner)} : {draw(inner)}"
    if kind == 8:
        return f"{draw(inner)}[{draw(inner)}]"
    return f"({draw(inner)})"


def check(source: str) -> str:
    """Compile, check and evaluate; only ConditionError may come out. What happened."""
    try:
        condition = compile_condition(source)
    except ConditionError as exc:
        assert str(exc).strip(), "an empty message"
        return "refused"
    for sample in SAMPLES:
        try:
            condition.is_true(sample)
        except ConditionError as exc:
            assert str(exc).strip()
    try:
        check_against(condition, SAMPLES)
    except ConditionError as exc:
        message = str(exc)
        assert message.startswith("`") and source[:50] in message, message
        return "refused"
    return "accepted"


@settings(FUZZ, max_examples=500)
@given(source=st.one_of(expressions(), st.text(max_size=200),
                        st.text(alphabet="()[]{}.!-+*/%<>=&|?:,'\"\\ \n\tabxyz019_", max_size=300)))
@example(source="inputs.amount > 10000.0 || signals.risk.verdict != 'ok'")
@example(source="'\\ud800' == '\\udfff'")
@example(source="'a'.matches('(a+)+$') && '" + "a" * 2000 + "!'.matches('(a+)+$')")
@example(source="size(" * 40 + "'x'" + ")" * 40)
@example(source="1" + " + 1" * 400)
@example(source="x" * 5000)
@example(source="\x00")
@example(source="[1,2].map(x, x).filter(y, y > 1).size() == 1 ? true : false")
def test_any_condition_compiles_or_is_refused_with_its_source(source: str, figures: Figures) -> None:
    figures.add("requests_sent")
    figures.add("examples")
    outcome = check(source)
    figures.add("refusals" if outcome == "refused" else "accepted")


# Expressions whose depth or length once overflowed the parser's stack (a segmentation
# fault: the whole process gone) or made the Rust library panic. Checked in a child process,
# so that if it ever happens again this test fails instead of the test session dying.
PATHOLOGICAL = {
    "chained additions": "'1' + ' + 1' * 20000",
    "chained member access": "'inputs' + '.a' * 20000",
    "chained index": "'inputs' + '[\"a\"]' * 20000",
    "nested calls": "'size(' * 20000 + '\"x\"' + ')' * 20000",
    "nested maps": "'{\"a\":' * 20000 + '1' + '}' * 20000",
    "nested parentheses": "'(' * 100000 + '1' + ')' * 100000",
    "nested parentheses, small stack": "'(' * 100 + '1' + ')' * 100",
    "chained additions, small stack": "'1' + '+1' * 1000",
    "nested lists": "'[' * 20000 + ']' * 20000",
}

CHILD = textwrap.dedent("""
    import json, sys, threading
    from gates.conditions import ConditionError, compile_condition
    cases = json.loads(sys.argv[1])
    threading.stack_size(512 * 1024)  # the stack macOS gives a worker thread

    def run():
        for name, code in cases.items():
            print(name, flush=True)
            try:
                compile_condition(eval(code)).evaluate({"inputs": {}})
                print("accepted", flush=True)
            except ConditionError as exc:
                print("refused:", str(exc)[:300], flush=True)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
""")


def test_deep_or_long_conditions_are_refused_not_fatal(figures: Figures) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(PATHOLOGICAL)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    figures.add("requests_sent", len(PATHOLOGICAL))
    figures.add("faults_injected", len(PATHOLOGICAL))
    assert done.returncode == 0, f"the process died ({done.returncode}) at {lines[-1:]}: {done.stderr[-500:]}"
    results = dict(zip(lines[::2], lines[1::2], strict=True))
    assert set(results) == set(PATHOLOGICAL)
    for name, outcome in results.items():
        assert outcome.startswith("refused:"), (name, outcome)
        assert "at most" in outcome or "not valid CEL" in outcome, (name, outcome)
        assert len(outcome) < 320  # the message quotes the expression, shortened
        figures.add("refusals")
