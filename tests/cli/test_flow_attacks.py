"""A hostile flow author against the guards of issue 21 (items 4 and 7), through the CLI with
real files on disk: conditions whose cost hid from the estimate, files whose size was not
their cost, names that slipped past validation. Each is refused by `baton flows validate`
and by loading, naming the file and the path, and one bad file never stops the others."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.conftest import InProcess
from tests.conftest import EXAMPLE_FLOWS


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def gate_when(name: str, condition: str, note_length: int = 2000) -> str:
    return f"""\
name: {name}
inputs:
  note: {{type: string, required: true, max_length: {note_length}}}
steps:
  - gate:
      id: approve
      when: "{condition}"
      approvers: "role:finance-approver"
"""


def examples_with(tmp_path: Path, name: str, text: str) -> Path:
    """The shipped flows (and their agents' code), plus one file of the attacker's."""
    folder = tmp_path / "flows"
    shutil.copytree(EXAMPLE_FLOWS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    write(folder, name, text)
    return folder


# -- matches(): what the estimate could not see ------------------------------------------------
ONES = "[" + ",".join("1" for _ in range(44)) + "]"


@pytest.mark.parametrize(("pattern", "why"), [
    # The estimate read `. {100}` as a space repeated a hundred times; the engine, under the x
    # flag, as `.` repeated. In a loop of 44 this held the interpreter 3.8 s within the budget.
    ("(?x)(. {100}) {100}", "the x flag (spaces and comments ignored) is not supported"),
    ("\\\\\\\\u{41}{500}", "an escape \\u that Baton does not read"),
])
def test_a_pattern_that_hides_its_repeats_is_refused(cli: InProcess, tmp_path: Path, pattern: str,
                                                      why: str) -> None:
    condition = f"{ONES}.exists(i, 'x'.matches('{pattern}'))"
    path = write(tmp_path / "flows", "hidden", gate_when("hidden", condition))
    validated = cli("flows", "validate", str(path))
    assert validated.returncode == 2
    assert f"{path}:7: steps[0].gate.when: " in validated.stderr
    assert "has a matches() pattern whose cost Baton cannot bound: " + why in validated.stderr

    started = cli("run", "hidden", "--as", "alice", BATON_FLOWS=str(path.parent))
    assert started.returncode == 2 and why in started.stderr
    assert "R-1" not in cli("status", BATON_FLOWS=str(path.parent)).stdout


def test_a_search_the_fast_engine_gives_up_on_is_counted_state_by_state(
        cli: InProcess, tmp_path: Path) -> None:
    """`[ab]*a[ab]{20}c` explodes the engine's lazy automaton: over 100,000 characters of a/b
    it searched for 171 ms, which the estimate put at 54,000 steps (about 8 ms)."""
    condition = "inputs.note.matches('[ab]*a[ab]{20}c')"
    long_note = write(tmp_path, "long", gate_when("long", condition, note_length=100_000))
    result = cli("flows", "validate", str(long_note))
    assert result.returncode == 2
    assert "may take up to 5,001," in result.stderr and "at most 100,000" in result.stderr
    short_note = write(tmp_path, "short", gate_when("short", condition, note_length=200))
    assert cli("flows", "validate", str(short_note)).returncode == 0
    plain = write(tmp_path, "plain", gate_when("plain", "inputs.note.matches('(?i)fraud|scam')",
                                               note_length=100_000))
    assert cli("flows", "validate", str(plain)).returncode == 0  # as cheap as contains()


def test_a_pattern_nested_too_deep_is_refused_and_every_other_flow_still_runs(
        cli: InProcess, tmp_path: Path) -> None:
    """1,500 nested groups overflowed the estimate's recursion: `baton flows validate` crashed,
    and so did loading the folder, so no flow at all could start."""
    deep = "(" * 1500 + "x" + ")" * 1500
    folder = examples_with(tmp_path, "deep", gate_when("deep", f"'x'.matches('{deep}')"))
    validated = cli("flows", "validate", BATON_FLOWS=str(folder))
    assert validated.returncode == 2 and "Traceback" not in validated.stderr
    assert f"{folder / 'deep.yaml'}:7: steps[0].gate.when: " in validated.stderr
    assert "groups or classes nested more than 32 deep" in validated.stderr
    assert f"ok    {folder / 'vendor-payment.yaml'}" in validated.stdout

    started = cli("run", "vendor-payment", "vendor=ACME", "amount=500", "note=chairs",
                    "--as", "alice", BATON_FLOWS=str(folder))
    assert started.returncode == 0, started.stderr
    assert "R-1 succeeded" in started.stdout


# -- the file's size is not its cost -----------------------------------------------------------
def test_a_file_of_many_small_values_is_refused_as_it_is_read(cli: InProcess,
                                                              tmp_path: Path) -> None:
    """256 KiB of `[0,0,…]` is 128,000 values: PyYAML took 15 s of CPU to read them, twice,
    before the unknown key was refused. Reading stops at the limit."""
    zeros = ",".join("0" for _ in range(120_000))
    path = write(tmp_path, "zeros", f"name: zeros\nsteps: [{{agent: a}}]\nx: [{zeros}]\n")
    assert path.stat().st_size < 256 * 1024
    result = cli("flows", "validate", str(path))
    assert result.returncode == 2
    assert (f"{path}: the file has more than 20,000 values (scalars, keys, lists and mappings); "
            "a flow file may have at most 20,000: split it into several flows") in result.stderr


def test_aliases_may_not_expand_past_the_same_limit(cli: InProcess, tmp_path: Path) -> None:
    """Ten times what is written used to be allowed: 40,000 values written, 400,000 expanded,
    33 s to validate 80 KB."""
    zeros = ",".join("0" for _ in range(3000))
    echoes = ",".join(["*a"] * 9)
    path = write(tmp_path, "echo", f"""\
name: echo
steps:
  - action: {{call: "examples.actions:send_payment", params: {{a: &a [{zeros}], b: [{echoes}]}}}}
""")
    result = cli("flows", "validate", str(path))
    assert result.returncode == 2
    assert "its aliases (*name) expand 3,0" in result.stderr
    assert "a flow file may have at most 20,000, aliases expanded" in result.stderr


def test_a_waiting_run_outlives_a_new_version_of_a_file_near_the_size_limit(
        cli: InProcess, tmp_path: Path) -> None:
    """A run continues on the version it started with, rebuilt from the database as JSON,
    where 200,000 quotes take 400,000 bytes: the file limit refused it, and the run was
    stranded at its gate once the file changed."""
    quotes = '"' * 200_000
    text = f"""\
name: quoted
description: '{quotes}'
steps:
  - gate: {{id: approve, approvers: "role:finance-approver"}}
"""
    folder = tmp_path / "flows"
    path = write(folder, "quoted", text)
    assert cli("run", "quoted", "--as", "alice", BATON_FLOWS=str(folder)).returncode == 0
    path.write_text(text.replace("steps:", "title: The second version\nsteps:"))
    decided = cli("decide", "R-1", "approve", "--as", "bob", BATON_FLOWS=str(folder))
    assert decided.returncode == 0, decided.stderr
    assert "R-1 succeeded" in decided.stdout


# -- names that slipped past validation --------------------------------------------------------
NAMED = """\
name: {flow}
inputs:
  {input}: {{type: number}}
agents:
  {agent}: {{kind: rules, rules: [{{when: "true"}}]}}
steps:
  - agent: {{id: {step}, agent: {agent}}}
  - gate:
      id: {gate}
      approvers: "role:finance-approver"
      options: [{{id: {option}, label: Fine, effect: approve}}, reject]
      escalation: {chain}
escalations:
  {chain}: {{levels: [{{notify: {notify}, wait: 1h}}]}}
triggers:
  webhook: {{secret_env: {secret}, requester: alice}}
"""
FINE = {"flow": "named", "input": "amount", "agent": "risk", "step": "assess", "gate": "approve",
        "option": "fine", "chain": "finance-chain", "notify": '"channel:C0123ABCD"',
        "secret": "BATON_HOOK_SECRET_NAMED"}


@pytest.mark.parametrize(("part", "where"), [
    ("flow", "name"), ("input", "inputs"), ("agent", "agents"), ("step", "steps[0].agent.id"),
    ("gate", "steps[1].gate.id"), ("option", "steps[1].gate.options[0].id"),
    ("chain", "escalations"), ("notify", "escalations.finance-chain.levels[0].notify"),
    ("secret", "triggers.webhook.secret_env"),
])
def test_a_name_ending_in_a_newline_is_refused(cli: InProcess, tmp_path: Path, part: str,
                                                where: str) -> None:
    """`$` also matches before a final newline: `"approve\\n"` passed as a name, went into
    Slack ids and channel ids, and no command, condition or template could ever name it."""
    value = FINE[part].strip('"') + "\\n"
    path = write(tmp_path, "named", NAMED.format(**{**FINE, part: f'"{value}"'}))
    result = cli("flows", "validate", str(path))
    assert result.returncode == 2, result.stdout
    assert f": {where}" in result.stderr, result.stderr


def test_the_same_names_without_the_newline_are_valid(cli: InProcess, tmp_path: Path) -> None:
    path = write(tmp_path, "named", NAMED.format(**FINE))
    assert cli("flows", "validate", str(path)).returncode == 0


def test_a_rule_gives_only_a_signal_an_agent_may_give(cli: InProcess, tmp_path: Path) -> None:
    """A 5,000-character summary passed validation, then failed the agent in every run."""
    folder = tmp_path / "flows"
    path = write(folder, "wordy", f"""\
name: wordy
agents:
  a: {{kind: rules, rules: [{{when: "true", verdict: ok, summary: "{'x' * 5000}"}}]}}
steps:
  - agent: a
""")
    validated = cli("flows", "validate", str(path))
    assert validated.returncode == 2
    assert f"{path}:3: agents.a.rules[0].summary: String should have at most 4000 characters" \
        in validated.stderr
    started = cli("run", "wordy", "--as", "alice", BATON_FLOWS=str(folder))
    assert started.returncode == 2 and "R-1" not in started.stdout


# -- the loop guard has ceilings ----------------------------------------------------------------
SPIN = """\
name: spin
agents:
  router: {{kind: rules, rules: [{{when: "true", branch: again}}]}}
  worker: {{kind: rules, rules: [{{when: "true", verdict: ok, summary: "again"}}]}}
steps:
  - route:
      agent: router
      repeat: true
      max_rounds: {rounds}
      branches:
        again:
          - agent: worker
limits: {{max_steps: {steps}, max_visits: {steps}}}
"""


def test_a_flow_cannot_lift_the_loop_guard(cli: InProcess, tmp_path: Path) -> None:
    """A route whose router always answers `again`, under limits of a billion: `baton run`
    never returned, writing thousands of rows (a worker of `baton serve` likewise, for good)."""
    folder = tmp_path / "flows"
    path = write(folder, "spin", SPIN.format(rounds=10**9, steps=10**9))
    validated = cli("flows", "validate", str(path))
    assert validated.returncode == 2
    assert f"{path}:9: steps[0].route.max_rounds: Input should be less than or equal to 100" \
        in validated.stderr
    assert "limits.max_steps: Input should be less than or equal to 1000" in validated.stderr
    assert "limits.max_visits: Input should be less than or equal to 1000" in validated.stderr

    write(folder, "spin", SPIN.format(rounds=100, steps=1000))
    started = cli("run", "spin", "--as", "alice", BATON_FLOWS=str(folder))
    assert started.returncode == 0, started.stderr
    assert "R-1 stopped: loop guard: 100 visits to step route-1 reached the limit of 100" \
        in started.stdout


@pytest.mark.parametrize(("where", "body"), [
    ("agents.slow.timeout", """\
agents:
  slow: {kind: llm, instructions: "You assess risk.", timeout: 0.05s,
         retry: {attempts: 10, backoff: 100000d, max_backoff: 100000d}}
steps:
  - agent: slow
"""),
    ("steps[0].action.timeout", """\
steps:
  - action: {call: "examples.actions:send_payment", timeout: 2h}
"""),
])
def test_an_agent_or_action_cannot_hold_a_run_worker_for_long(
        cli: InProcess, tmp_path: Path, where: str, body: str) -> None:
    """The run workers (eight) wait out every timeout and sleep through every backoff: an
    agent that times out at once, with a backoff of 100,000 days, parked a worker for good,
    and eight such runs stopped every flow of the server."""
    path = write(tmp_path, "parked", "name: parked\n" + body)
    result = cli("flows", "validate", str(path))
    assert result.returncode == 2
    assert f": {where}: this " in result.stderr
    assert "may hold one of the server's run workers for" in result.stderr
    assert "at most 1h: lower timeout, retry.attempts or retry.max_backoff" in result.stderr
