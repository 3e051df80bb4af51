"""Flow files are validated strictly: every problem names the file, the line, the path
inside the file and what was expected."""

from pathlib import Path

import pytest

from orchestrator.callables import CallableLoader
from orchestrator.errors import FlowError
from orchestrator.loader import load_flow, load_org
from tests.conftest import EXAMPLE_FLOWS

ORG = load_org(EXAMPLE_FLOWS / "org.yaml")
CALLABLES = CallableLoader(["examples"], EXAMPLE_FLOWS)

BASE = """\
name: demo
inputs:
  amount: {type: number, required: true}
  vendor: {type: string, required: true}
agents:
  research: {kind: rules, rules: [{when: "true", verdict: ok}]}
  risk: {kind: rules, rules: [{when: "inputs.amount > 10.0", verdict: warn}]}
steps:
  - parallel: [research, risk]
%s
"""


def load(tmp_path: Path, text: str) -> FlowError:
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    with pytest.raises(FlowError) as caught:
        load_flow(path, ORG, CALLABLES)
    return caught.value


def only(error: FlowError) -> str:
    assert len(error.problems) == 1, error.problems
    return str(error.problems[0])


def test_examples_are_valid() -> None:
    for path in sorted(EXAMPLE_FLOWS.glob("*.yaml")):
        if path.name != "org.yaml":
            load_flow(path, ORG, CALLABLES)


def test_unknown_key_names_file_line_path_and_suggests(tmp_path: Path) -> None:
    text = BASE % '  - gate: {aprovers: "role:finance-approver"}'
    message = str(load(tmp_path, text))
    assert ("demo.yaml:10: steps[1].gate.aprovers: unknown key 'aprovers' "
            "(did you mean 'approvers'?)") in message


def test_bad_cel(tmp_path: Path) -> None:
    text = BASE % '  - gate: {when: "inputs.amount >", approvers: "role:finance-approver"}'
    message = only(load(tmp_path, text))
    assert message.startswith(
        f"{tmp_path / 'demo.yaml'}:10: steps[1].gate.when: `inputs.amount >` is not valid CEL")


def test_misspelt_input_in_cel(tmp_path: Path) -> None:
    text = BASE % '  - gate: {when: "inputs.amout > 1.0", approvers: "role:finance-approver"}'
    assert "steps[1].gate.when: `inputs.amout > 1.0` refers to 'amout'" in only(load(tmp_path, text))


def test_type_error_in_cel(tmp_path: Path) -> None:
    text = BASE % '  - boundary: {check: "inputs.vendor > 5"}'
    assert "steps[1].boundary.check" in only(load(tmp_path, text))


def test_unknown_agent(tmp_path: Path) -> None:
    text = BASE.replace("[research, risk]", "[research, risky]") % ""
    assert ("steps[0].parallel.agents[1]: unknown agent 'risky'; agents: research, risk"
            in only(load(tmp_path, text)))


def test_unknown_role(tmp_path: Path) -> None:
    text = BASE % '  - gate: {approvers: "role:finance-aprover"}'
    message = only(load(tmp_path, text))
    assert "steps[1].gate.approvers: unknown role 'finance-aprover'" in message
    assert "finance-approver" in message  # the roles that do exist


def test_route_cycle(tmp_path: Path) -> None:
    text = BASE % """\
  - route: {agent: research, branches: {a: review}}
blocks:
  review:
    - route: {agent: research, branches: {again: escalate}}
  escalate:
    - route: {agent: research, branches: {back: review}}"""
    message = only(load(tmp_path, text))
    assert "route cycle: review -> escalate -> review" in message
    assert "blocks.escalate[0].route.branches.back" in message


def test_back_to_must_be_an_earlier_step(tmp_path: Path) -> None:
    text = BASE % ('  - gate: {approvers: "role:finance-approver", options: [approve, request_changes],'
                   ' back_to: later}')
    assert "back_to 'later' must name an earlier step" in only(load(tmp_path, text))


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    text = BASE % '  - gate: {approvers: "role:finance-approver", quorum: two}'
    assert "steps[1].gate.quorum: Input should be a valid integer" in only(load(tmp_path, text))


def test_duplicate_yaml_keys_are_an_error(tmp_path: Path) -> None:
    text = BASE.replace("name: demo\n", "name: demo\nname: other\n") % ""
    assert "duplicate key 'name' (first at line 1)" in only(load(tmp_path, text))


def test_invalid_yaml_has_a_line(tmp_path: Path) -> None:
    text = BASE % '  - gate: {approvers: "role:x"'
    assert ":11:" in only(load(tmp_path, text)) or ":10:" in only(load(tmp_path, text))


def test_disallowed_module(tmp_path: Path) -> None:
    text = BASE % '  - action: {call: "os:system"}'
    assert "module 'os' is not allowed" in only(load(tmp_path, text))


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = BASE % ('  - gate: {approvers: "role:nobody", when: "bogus.x"}\n'
                   '  - agent: ghost')
    assert len(load(tmp_path, text).problems) == 3


def test_org_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text("users: {bob: {slack_id: nope}}\nroles: {x: [carol]}\n")
    with pytest.raises(FlowError) as caught:
        load_org(path)
    message = str(caught.value)
    assert "users.bob.slack_id" in message and "expected a Slack user id" in message


def _flow(name: str) -> str:
    return BASE.replace("name: demo", f"name: {name}") % "  - gate: {id: ok, approvers: [alice]}"


def test_a_flow_file_added_later_is_found_whenever_it_was_added(tmp_path: Path) -> None:
    """The folder is listed again only when its mtime or ctime moves: a file added, removed
    or renamed, or the mtime set back (a copy that keeps times), whatever the mtime says."""
    import os
    import time

    from orchestrator.loader import FlowCatalog

    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "first.yaml").write_text(_flow("first"))
    catalog = FlowCatalog(folder, ORG, CALLABLES)

    old = time.time_ns() - 60 * 10**9  # a folder nobody touched for a minute
    os.utime(folder, ns=(old, old))
    assert catalog.get("first").name == "first"
    (folder / "second.yaml").write_text(_flow("second"))  # moves the folder's mtime
    assert catalog.get("second").name == "second"

    os.utime(folder, ns=(old, old))
    assert sorted(catalog.load_all()[0]) == ["first", "second"]
    (folder / "third.yaml").write_text(_flow("third"))
    os.utime(folder, ns=(old, old))  # the same mtime as the listing's: the ctime moved
    assert catalog.get("third").name == "third"
    (folder / "first.yaml").unlink()
    os.utime(folder, ns=(old, old))
    assert sorted(catalog.load_all()[0]) == ["second", "third"]
