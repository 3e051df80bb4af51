"""A broken org file, as its author meets it on the command line: every problem at once, each
with the file, its line, the place in the file (`users.bob.slack_id`), what is wrong and how to
fix it; exit 2, and nothing is read or written."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Baton, InProcess

BROKEN = """\
users:
  alice: {name: Alice Ng, slack_id: U0ALICE01}
  bob:
    name: Bob Ortiz
    slack_idd: U0BOB0001
  carol: {slack_id: nope}
  Dave: {}
  erin: {name: 5, logins: [erin, has space]}
  alice-ops: {slack_id: U0ALICE01}
roles:
  finance-approver: bob
admin: [alice]
"""


def _expected(org: Path) -> list[str]:
    return [
        f"{org}:5: users.bob.slack_idd: unknown key 'slack_idd' (did you mean 'slack_id'?)",
        f"{org}:6: users.carol.slack_id: expected a Slack user id such as U0123ABCD, got 'nope'",
        f"{org}:7: users.Dave: 'Dave' is not a valid name: use lower-case letters, digits, '.', '_', '-'",
        f"{org}:8: users.erin.name: expected text, got 5: put it in quotes if it is meant as text",
        f"{org}:8: users.erin.logins[1]: 'has space' is not a login name: letters, digits, '.', '_', '-'",
        f"{org}:9: users.alice-ops.slack_id: users 'alice' and 'alice-ops' have the same slack_id "
        "U0ALICE01: one person, one entry",
        f"{org}:11: roles.finance-approver: expected a list, got 'bob'",
        f"{org}:12: admin: unknown key 'admin' (did you mean 'admins'?)",
    ]


def test_every_problem_in_the_org_file_is_named_at_once(cli: InProcess, tmp_path: Path) -> None:
    org = tmp_path / "org.yaml"
    org.write_text(BROKEN)
    for command in (("flows", "validate"), ("status",), ("status", "R-1")):
        result = cli(*command, BATON_ORG=str(org))
        assert result.returncode == 2, command
        for line in _expected(org):
            assert line in result.stderr, (command, line, result.stderr)
    assert not (tmp_path / "baton.db").exists()


def test_status_as_a_process_names_the_problem_and_the_place(baton: Baton, tmp_path: Path) -> None:
    org = tmp_path / "org.yaml"
    org.write_text(BROKEN.replace("  alice-ops: {slack_id: U0ALICE01}\n", "")
                   .replace("  carol: {slack_id: nope}\n", "  carol: {slack_id: U0ALICE01}\n"))
    result = baton("status", "R-1", BATON_ORG=str(org))
    assert result.returncode == 2
    assert (f"{org}:6: users.carol.slack_id: users 'alice' and 'carol' have the same slack_id "
            "U0ALICE01: one person, one entry") in result.stderr
    assert f"{org}:5: users.bob.slack_idd: unknown key 'slack_idd' (did you mean 'slack_id'?)" \
        in result.stderr
