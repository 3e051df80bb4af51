"""Flow files fuzzed (issue 8, item 6): random YAML structures, the repository's flows
mutated, their text damaged, arbitrary bytes on disk. Loading either gives a program or
refuses with FlowError (a ConditionError at most), every problem naming the file and what
is wrong. Never another exception, never a hang: YAML aliases cannot multiply the work."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gates.conditions import ConditionError
from orchestrator.callables import CallableLoader
from orchestrator.errors import BatonError, FlowError
from orchestrator.loader import _ALL_KEYS, compile_document, load_flow
from orchestrator.yamlfile import parse_yaml
from tests.conftest import EXAMPLE_FLOWS, TEST_FLOWS
from tests.figures import Figures
from tests.reliability.conftest import FLOWS, FUZZ, MODULES, ORG

pytestmark = pytest.mark.reliability(
    item="6", promise="Bad input (invalid flow files) gets a clear error naming the problem")

SOURCE = "fuzzed.yaml"
CORPUS = {path.name: path.read_text(encoding="utf-8")
          for folder in (EXAMPLE_FLOWS, TEST_FLOWS, FLOWS) for path in sorted(folder.glob("*.yaml"))
          if path.name != "org.yaml"}
KEYS = sorted(_ALL_KEYS)
CALLABLES = CallableLoader(MODULES, FLOWS)

STRINGS = st.one_of(
    st.text(max_size=20),
    st.sampled_from([
        "", " ", "true", "inputs.amount > 1.0", "inputs.nope", "signals.x.verdict == 'ok'", "1 +",
        "role:approver", "role:nobody", "user:bob", "group:none", "channel:payments", "#x",
        "reliabilityagents:echo", "os:system", "30m", "-1s", "1e400d", "0s", "99999999999999d",
        "approve", "reject", "request_changes", "escalate", "retry", "x" * 300, "<!channel>",
        "\u202e", "\x00", "${inputs.x}", "${signals.nope.summary}", "R-1", "*", "&a", "!!"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2, 100),
                    st.floats(allow_nan=True, allow_infinity=True), STRINGS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=4)),
    max_leaves=25)


def load(text: str, checked: bool = True) -> str:
    """Load a flow file's text; only FlowError or ConditionError may come out."""
    try:
        compile_document(parse_yaml(text, SOURCE), ORG, CALLABLES if checked else None)
    except FlowError as exc:
        assert exc.problems, "a FlowError without problems"
        for problem in exc.problems:
            assert problem.file == SOURCE and problem.message.strip(), problem
        assert str(exc).startswith(SOURCE)
        return "refused"
    except (ConditionError, BatonError) as exc:
        assert str(exc).strip()
        return "refused"
    return "accepted"


def tally(figures: Figures, outcome: str) -> None:
    figures.add("requests_sent")
    figures.add("examples")
    figures.add("refusals" if outcome == "refused" else "accepted")


@settings(FUZZ, max_examples=150)
@given(data=st.dictionaries(st.sampled_from(KEYS + ["name", "steps"]), VALUES, max_size=6) | VALUES)
def test_random_structures_load_or_are_refused(data: Any, figures: Figures) -> None:
    tally(figures, load(yaml.safe_dump(data, allow_unicode=True)))


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


def _mutate(data: Any, draw: st.DataObject) -> Any:
    path = draw.draw(st.sampled_from(_paths(data)), label="path")
    if not path:
        return draw.draw(VALUES, label="replace the document")
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    operation = draw.draw(st.sampled_from(["replace", "delete", "add", "wrap", "duplicate", "empty"]),
                          label="operation")
    if operation == "replace":
        parent[last] = draw.draw(VALUES, label="value")
    elif operation == "delete":
        del parent[last]
    elif operation == "add" and isinstance(parent[last], dict):
        parent[last][draw.draw(st.sampled_from(KEYS) | st.text(max_size=6), label="key")] = \
            draw.draw(VALUES, label="value")
    elif operation == "wrap":
        parent[last] = [parent[last]] if draw.draw(st.booleans()) else {"x": parent[last]}
    elif operation == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif operation == "empty":
        parent[last] = type(parent[last])() if isinstance(parent[last], dict | list | str) else None
    return data


@settings(FUZZ, max_examples=250)
@given(name=st.sampled_from(sorted(CORPUS)), data=st.data(), checked=st.booleans())
def test_mutated_flows_load_or_are_refused(name: str, data: st.DataObject, checked: bool,
                                           figures: Figures) -> None:
    flow = yaml.safe_load(CORPUS[name])
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        flow = _mutate(flow, data)
    tally(figures, load(yaml.safe_dump(flow, allow_unicode=True), checked))


YAML_BITS = [":", ": ", "-", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "*b", "!!str ",
             "!!python/name:os.system ", "? ", "|", ">", "'", '"', "\t", "\n", "  ", "#",
             "%YAML 1.1\n", "---\n", "...\n", "@",
             "`", "\\", "\x00", "\ufeff", "\u2028", "<<: *a\n", "&a [*a]", "\r"]


@settings(FUZZ, max_examples=200)
@given(name=st.sampled_from(sorted(CORPUS)), data=st.data())
def test_damaged_flow_text_loads_or_is_refused(name: str, data: st.DataObject, figures: Figures) -> None:
    text = CORPUS[name]
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        cut = data.draw(st.integers(0, 10), label="cut")
        bit = data.draw(st.sampled_from(YAML_BITS) | st.text(max_size=3), label="insert")
        text = text[:at] + bit + text[at + cut:]
    tally(figures, load(text))


def bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nname: bomb\ninputs: {{v: {{choices: *a{levels - 1}}}}}\nsteps: []\n"


@settings(FUZZ, max_examples=60)
@given(content=st.binary(max_size=400))
@example(content=b"\xff\xfe\x00name: x")
@example(content=bomb(9).encode())  # 9 ** 9 values from ten lines: minutes of CPU, once
@example(content=("[" * 3000 + "]" * 3000).encode())
@example(content=b"a: &a [*a]")
@example(content=b"? [a, b]\n: 1\n")
@example(content=b"name: x\nagents: {r: {kind: rules, timeout: 99999999999999999999d, "
                 b"rules: [{when: 'true'}]}}\nsteps: [{agent: r}]\n")
@example(content=b"name: x\nagents: {r: {kind: rules, timeout: .inf, rules: [{when: 'true'}]}}\n"
                 b"steps: [{agent: r}]\n")
@example(content=b"name: x\nsteps:\n  - gate: {when: '" + b"1 + " * 20000 + b"1 > 0'}\n")
def test_any_file_on_disk_loads_or_is_refused(content: bytes, tmp_path: Path, figures: Figures) -> None:
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(content)
    try:
        load_flow(path, ORG, CALLABLES)
        outcome = "accepted"
    except FlowError as exc:
        assert exc.problems and all(p.message.strip() for p in exc.problems)
        assert str(exc).startswith(str(path))
        outcome = "refused"
    except ConditionError as exc:
        assert str(exc).strip()
        outcome = "refused"
    tally(figures, outcome)
