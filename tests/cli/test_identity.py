"""Who is acting on the command line is never guessed: --as, $BATON_USER, or an operating-system
login the org file lists under a user's `logins`. Anything else is refused the same way,
exit 2, and nothing is written."""

from __future__ import annotations

import getpass
from pathlib import Path

import yaml

from tests.cli.conftest import Baton, InProcess
from tests.conftest import EXAMPLE_FLOWS

START = ("run", "vendor-payment", "vendor=ACME", "amount=20000")


def _org_with_logins(tmp_path: Path, **logins: list[str]) -> Path:
    org = yaml.safe_load((EXAMPLE_FLOWS / "org.yaml").read_text())
    for user, names in logins.items():
        org["users"][user]["logins"] = names
    path = tmp_path / "org-with-logins.yaml"
    path.write_text(yaml.safe_dump(org))
    return path


def test_an_unknown_actor_is_refused_whatever_its_source(cli: InProcess, baton: Baton) -> None:
    login = getpass.getuser()
    # as a process once: the login is the process's own
    assert baton(*START).stderr.startswith(f"error: who is acting? Your login {login!r} is not")
    baton = cli  # the rest through typer's runner, in this process (the same code, faster)
    plain = baton(*START)  # no --as, no BATON_USER, and the example org lists no logins
    assert plain.returncode == 2
    assert plain.stderr.startswith(f"error: who is acting? Your login {login!r} is not one of the logins in ")
    assert "Say --as NAME (users: alice, bob, carol" in plain.stderr
    assert f"add {login!r} to a user's logins there" in plain.stderr

    by_option = baton(*START, "--as", "zed")
    by_env = baton(*START, BATON_USER="zed")
    assert by_option.returncode == by_env.returncode == 2
    assert by_option.stderr.startswith("error: --as: unknown user 'zed'; users in ")
    assert by_env.stderr.startswith("error: BATON_USER: unknown user 'zed'; users in ")
    assert by_option.stderr.split("; ", 1)[1] == by_env.stderr.split("; ", 1)[1]
    # an empty name (a script's unset variable) is refused too, not replaced by the login
    for empty in (baton(*START, "--as", ""), baton(*START, BATON_USER=""), baton(*START, BATON_USER=" ")):
        assert empty.returncode == 2 and "unknown user" in empty.stderr, empty.stderr
    assert "no open runs" in baton("status").stdout  # nothing was started

    # the same for every command that acts, not only `run`
    assert baton(*START, "--as", "alice").returncode == 0
    for args in (("decide", "R-1", "approve"), ("stop", "R-1"), ("claim", "R-1"), ("halt",), ("resume",),
                 ("snooze", "R-1", "15m"), ("reassign", "R-1", "--to", "carol")):
        refused = baton(*args)
        assert refused.returncode == 2, args
        assert refused.stderr.startswith("error: who is acting?"), (args, refused.stderr)
    assert baton("reassign", "R-1", "--to", "zed", "--as", "dave").stderr.startswith(
        "error: --to: unknown user 'zed'")
    assert "R-1 vendor-payment: waiting" in baton("status", "R-1").stdout


def test_baton_user_names_who_acts(cli: InProcess) -> None:
    baton = cli
    started = baton(*START, BATON_USER="alice")
    assert started.returncode == 0, started.stderr
    assert "R-1 started: vendor-payment by Alice Ng" in started.stdout
    assert "requested by Alice Ng" in baton("status", "R-1").stdout
    decided = baton("decide", "R-1", "approve", "--reason", "PO matches", BATON_USER="bob")
    assert decided.returncode == 0, decided.stderr
    assert "Bob Ortiz chose approve" in baton("trace", "R-1").stdout
    # --as wins over BATON_USER
    assert baton(*START, "--as", "carol", BATON_USER="alice").stdout.startswith("R-2 started: "
                                                                              "vendor-payment by Carol Diaz")


def test_an_os_login_acts_only_as_the_person_the_org_file_maps_it_to(cli: InProcess, tmp_path: Path) -> None:
    baton = cli
    login = getpass.getuser()
    org = _org_with_logins(tmp_path, alice=[login, "alice.ng"])
    started = baton(*START, BATON_ORG=str(org))
    assert started.returncode == 0, started.stderr
    assert "R-1 started: vendor-payment by Alice Ng" in started.stdout
    # the mapped login cannot decide what the person it maps to may not
    refused = baton("decide", "R-1", "approve", BATON_ORG=str(org))
    assert refused.returncode == 2 and "not an approver" in refused.stderr

    # another person's login does not act for this one
    other = _org_with_logins(tmp_path, bob=["someone-else"])
    assert baton(*START, BATON_ORG=str(other)).stderr.startswith("error: who is acting?")


def test_a_login_listed_for_two_people_makes_the_org_file_invalid(cli: InProcess, tmp_path: Path) -> None:
    baton = cli
    org = _org_with_logins(tmp_path, alice=["ops"], bob=["backup", "ops"])
    result = baton(*START, "--as", "alice", BATON_ORG=str(org))
    assert result.returncode == 2
    assert "users.bob.logins[1]: login 'ops' is already alice's: a login acts as one person" in result.stderr
    for wrong in ("has space", "alice\n", ""):  # a trailing newline is no part of a login either
        bad = _org_with_logins(tmp_path, alice=[wrong])
        invalid = baton("flows", "validate", BATON_ORG=str(bad))
        assert invalid.returncode == 2, wrong
        assert "users.alice.logins" in invalid.stderr and "is not a login name" in invalid.stderr
