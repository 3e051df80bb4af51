"""The `baton` command as people use it: separate processes on one database file."""

import re
import signal

from tests.cli.conftest import Baton, InProcess


def test_a_run_waiting_in_one_process_is_decided_by_another(baton: Baton) -> None:
    started = baton("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "alice")
    assert started.returncode == 0, started.stderr
    assert "R-1 waiting at gate 'approve'" in started.stdout
    assert started.stdout.strip().endswith("R-1 waiting")

    status = baton("status", "R-1")
    assert "can decide: Bob Ortiz, Carol Diaz" in status.stdout
    assert "escalation finance-chain: level 1 of 3" in status.stdout

    decided = baton("decide", "R-1", "approve", "--as", "bob", "--reason", "Invoice matches the PO")
    assert decided.returncode == 0, decided.stderr
    assert decided.stdout.strip().endswith("R-1 succeeded")
    assert [e["run"] for e in baton.entries()] == ["R-1"]

    trace = baton("trace", "R-1")
    assert 'Bob Ortiz chose approve at \'approve\': "Invoice matches the PO"' in trace.stdout
    assert "boundary amount-limit passed" in trace.stdout
    assert baton("trace", "verify", "R-1").returncode == 0


def test_refusals_exit_2_with_a_message_and_change_nothing(cli: InProcess) -> None:
    baton = cli
    baton("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "alice")
    refused = baton("decide", "R-1", "approve", "--as", "dave")
    assert refused.returncode == 2
    assert "error: you are not an approver of R-1 gate 'approve'" in refused.stderr
    assert "waiting" in baton("status", "R-1").stdout

    unknown = baton("run", "vendor-payment", "vendor=ACME", "amount=lots", "--as", "alice")
    assert unknown.returncode == 2
    assert "amount: expected a number" in unknown.stderr
    assert unknown.stderr.count("usage:") == 1 and "usage: baton run vendor-payment" in unknown.stderr
    assert "missing required input 'amount'" not in unknown.stderr  # it was given, as a wrong value
    assert baton("run", "nope").returncode == 2
    assert baton("decide", "R-9", "approve", "--as", "bob").returncode == 2
    assert baton("decide", "R-1", "approve", "--as", "mallory").stderr.startswith(
        "error: --as: unknown user 'mallory'")
    assert "R-2" not in baton("status").stdout


def test_flows_validate_exits_2_on_any_problem(cli: InProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    baton = cli
    assert baton("flows", "validate").returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - gate: {approvers: 'role:nobody', when: 'inputs.x >'}\n")
    result = baton("flows", "validate", str(bad))
    assert result.returncode == 2
    assert "bad.yaml:3: steps[0].gate.when" in result.stderr
    assert "bad.yaml:3: steps[0].gate.approvers: unknown role 'nobody'" in result.stderr


def test_action_in_flight_when_the_process_is_killed_is_never_repeated(
        baton_tests: Baton, wait_for) -> None:  # type: ignore[no-untyped-def]
    child = baton_tests.spawn("run", "action-crash-plain", "--as", "alice", TEST_ACTION_SECONDS="60")
    wait_for(lambda: any(e.get("event") == "started" for e in baton_tests.entries()))
    child.send_signal(signal.SIGKILL)
    child.wait()

    resumed = baton_tests("tick")
    assert "1 run continued" in resumed.stdout
    status = baton_tests("status", "R-1")
    assert "waiting at gate 'pay-unknown' (action): Did 'pay' run?" in status.stdout
    assert "can decide: Erin Park" in status.stdout
    assert len(baton_tests.entries()) == 1  # not run again

    done = baton_tests("decide", "R-1", "done", "--as", "erin", "--reason", "Seen in the bank portal")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("R-1 succeeded")
    assert len(baton_tests.entries()) == 1
    trace = baton_tests("trace", "R-1").stdout
    assert "action 'pay' outcome UNKNOWN: it was in flight when Baton stopped" in trace


def test_idempotent_action_in_flight_is_run_again(baton_tests: Baton, wait_for) -> None:  # type: ignore[no-untyped-def]
    child = baton_tests.spawn("run", "action-crash-idempotent", "--as", "alice",
                              TEST_ACTION_SECONDS="60")
    wait_for(lambda: any(e.get("event") == "started" for e in baton_tests.entries()))
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert "1 run continued" in baton_tests("tick").stdout
    assert "succeeded" in baton_tests("status", "R-1").stdout
    attempts = [e["attempt"] for e in baton_tests.entries()]
    keys = {e["key"] for e in baton_tests.entries()}
    assert attempts == [1, 2] and keys == {"R-1:pay"}  # same idempotency key both times


def test_serve_says_which_transport_or_what_is_missing(cli: InProcess) -> None:
    http_no_secret = cli("serve", "--http", SLACK_BOT_TOKEN="xoxb-1")
    assert http_no_secret.returncode == 2 and "SLACK_SIGNING_SECRET" in http_no_secret.stderr


def test_transport_choice() -> None:
    from bot.cli import slack_transport
    from orchestrator.settings import Settings

    def pick(http: bool = False, **env: str) -> str | None:
        return slack_transport(Settings(_env_file=None, **env), http)[0]  # type: ignore[call-arg]

    assert pick(SLACK_BOT_TOKEN="b", SLACK_APP_TOKEN="a") == "socket"
    assert pick(SLACK_BOT_TOKEN="b", SLACK_SIGNING_SECRET="s") == "http"
    assert pick(True, SLACK_BOT_TOKEN="b", SLACK_APP_TOKEN="a", SLACK_SIGNING_SECRET="s") == "http"
    assert pick(SLACK_APP_TOKEN="a") is None


def test_trace_stats_and_verify_from_the_command_line(cli: InProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from storage.engine import Database

    cli("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "alice")
    cli("decide", "R-1", "approve", "--as", "bob", "--reason", "PO matches")
    summary = cli("trace", "R-1")  # piped: plain text
    assert summary.returncode == 0
    assert "R-1 · vendor-payment · succeeded" in summary.stdout
    assert 'Bob Ortiz chose approve: "PO matches"' in summary.stdout
    exported = json.loads(cli("trace", "R-1", "--json").stdout)
    assert exported["schema_version"] == 1 and exported["verification"]["ok"] is True
    listing = cli("trace", "--decided-by", "bob", "--since", "1d")
    assert "R-1" in listing.stdout and "vendor-payment" in listing.stdout
    assert "no runs match" in cli("trace", "--flow", "release-review").stdout

    figures = json.loads(cli("stats", "--json").stdout)
    assert figures["runs"] == 1 and figures["approval_rate"] == 1.0
    chart = tmp_path / "chart.png"
    assert cli("stats", "vendor-payment", "--chart", str(chart)).returncode == 0
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert cli("stats", "nope").returncode == 2

    assert cli("trace", "verify", "--all").returncode == 0
    db = Database(cli.database_url)
    with db.write() as s:  # someone edits the record by hand
        s.connection().exec_driver_sql(
            "UPDATE trace_entry SET data = CAST(replace(CAST(data AS TEXT), 'PO matches', 'no PO') "
            "AS JSON) WHERE kind = 'decision'" if db.is_postgresql else
            "UPDATE trace_entry SET data = replace(data, 'PO matches', 'no PO') WHERE kind = 'decision'")
    db.dispose()
    broken = cli("trace", "verify", "R-1")
    assert broken.returncode == 1
    assert "BROKEN R-1 entry #" in broken.stdout and "content does not match its hash" in broken.stdout
    assert cli("trace", "verify", "--all").returncode == 1


def test_times_numbers_and_durations_read_the_same_as_in_slack(cli: InProcess) -> None:
    import re

    started = cli("run", "vendor-payment", "vendor=ACME", "amount=20000", "--as", "alice")
    assert re.search(r"can decide: Bob Ortiz, Carol Diaz, next step \d{4}-\d\d-\d\d \d\d:\d\d UTC\)",
                     started.stdout), started.stdout
    status = cli("status", "R-1").stdout
    assert "inputs: vendor=ACME, amount=20,000" in status
    assert re.search(r"level 1 of 3, waiting, next step \d{4}-\d\d-\d\d \d\d:\d\d UTC", status), status
    decided = cli("decide", "R-1", "approve", "--as", "bob", "--reason", "PO matches")
    assert "gate 'approve': approved by Bob Ortiz" in decided.stdout  # each fact once
    trace = cli("trace", "R-1").stdout
    for raw in (r"\d\d:\d\d:\d\d\.\d{6}", r"\+00:00", r"20000\.0", r"\(approve\) by", r"attempt\(s\)",
                r"\d\.\d{3}s"):
        assert not re.search(raw, started.stdout + status + decided.stdout + trace), raw


def test_flows_list_shows_how_to_start_each_flow_and_the_version_is_known(cli: InProcess) -> None:
    listed = cli("flows", "list").stdout
    assert "baton run support-triage service=TEXT severity=sev1|sev2|sev3 [summary=TEXT]" in listed
    assert "=string" not in listed and "=number" not in listed
    version = cli("--version")
    assert version.returncode == 0 and re.fullmatch(r"baton \d+\.\d+\.\d+\S*\n", version.stdout)
    missing = cli("status", "R-9")
    assert missing.stderr == "error: no run R-9; `baton status` lists runs\n"
