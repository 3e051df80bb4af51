"""Reading an org file's parsed document into frozen data: every problem at its place, all at
once, and nothing but OrgFileError whatever the document holds."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gates.org_data import OrgFile, OrgFileError

VALID = {
    "users": {"bob": {"name": "Bob", "slack_id": "U0BOB0001", "logins": ["bob", "b.ortiz"]},
              "carol": {"email": "carol@example.com"}},
    "roles": {"approver": ["bob", "group:team"]},
    "groups": {"team": {"slack_id": "S0TEAM", "members": ["carol"]}},
    "channels": {"finance": {"slack_id": "C0FIN"}, "ops": {}},
    "services": {"billing-agent": {"name": "Billing", "owner": "bob"}},
    "admins": ["role:approver"],
    "default_channel": "finance",
}


def problems(data: object) -> list[tuple[tuple, str]]:
    with pytest.raises(OrgFileError) as caught:
        OrgFile.from_data(data)
    return caught.value.problems


def test_a_valid_document_reads_into_frozen_data_and_back() -> None:
    org = OrgFile.from_data(VALID)
    assert org.users["bob"].logins == ("bob", "b.ortiz") and org.roles["approver"] == ("bob", "group:team")
    assert org.services["billing-agent"].description == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        org.users["bob"].slack_id = "U0OTHER01"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        org.admins = ()  # type: ignore[misc]
    with pytest.raises(TypeError):  # nor can a person be added or taken away
        org.users["mallory"] = org.users["bob"]  # type: ignore[index]
    with pytest.raises(TypeError):
        del org.roles["approver"]  # type: ignore[attr-defined]
    assert OrgFile.from_data(org.to_data()) == org
    # what is written back is YAML a person reads, and the same org file
    assert OrgFile.from_data(yaml.safe_load(yaml.safe_dump(org.to_data()))) == org
    assert OrgFile.from_data({}) == OrgFile()


def test_every_problem_is_named_at_its_place_at_once() -> None:
    found = problems({
        "users": {"bob": {"slack_idd": "U0BOB0001"}, "carol": {"slack_id": "nope"},
                  "Dave": {}, "erin": {"name": 5, "logins": ["ok", "has space", 7]}},
        "roles": {"approver": "bob"},
        "admin": ["bob"],
    })
    assert found == [
        (("users", "bob", "slack_idd"), "unknown key 'slack_idd' (did you mean 'slack_id'?)"),
        (("users", "carol", "slack_id"), "expected a Slack user id such as U0123ABCD, got 'nope'"),
        (("users", "Dave"), "'Dave' is not a valid name: use lower-case letters, digits, '.', '_', '-'"),
        (("users", "erin", "name"), "expected text, got 5: put it in quotes if it is meant as text"),
        (("users", "erin", "logins", 1), "'has space' is not a login name: letters, digits, '.', '_', '-'"),
        (("users", "erin", "logins", 2), "expected text, got 7: put it in quotes if it is meant as text"),
        (("roles", "approver"), "expected a list, got 'bob'"),
        (("admin",), "unknown key 'admin' (did you mean 'admins'?)"),
    ]  # in the document's order


def test_an_unknown_key_with_no_near_name_lists_the_keys_there() -> None:
    assert problems({"channels": {"ops": {"topic": "x"}}}) == [
        (("channels", "ops", "topic"), "unknown key 'topic'; expected one of slack_id")]


def test_one_slack_user_is_one_person() -> None:
    same = {"users": {"alice": {"slack_id": "U0ALICE01"}, "alice-ops": {"slack_id": "U0ALICE01"}}}
    assert problems(same) == [(("users", "alice-ops", "slack_id"),
                               "users 'alice' and 'alice-ops' have the same slack_id U0ALICE01: "
                               "one person, one entry")]


@pytest.mark.parametrize(("document", "expected"), [
    ({"users": None}, (("users",), "expected a mapping of names to their entries, got nothing")),
    ({"users": ["bob"]}, (("users",), "expected a mapping of names to their entries, got a list")),
    ({"users": {"bob": "Bob"}},
     (("users", "bob"), "expected a mapping with name, slack_id, email, logins, got 'Bob'")),
    ({"users": {5: {}}}, (("users", "5"), "5 is not a valid name: use lower-case letters, digits, "
                                          "'.', '_', '-'")),
    ({"admins": "bob"}, (("admins",), "expected a list, got 'bob'")),
    ({"default_channel": date(2024, 1, 1)},
     (("default_channel",), "expected text, got 2024-01-01: put it in quotes if it is meant as text")),
    ({"services": {"s": {"description": None}}},
     (("services", "s", "description"), "expected text, got nothing")),
    ({"users": {"a": {"logins": "ops"}}}, (("users", "a", "logins"), "expected a list, got 'ops'")),
    ({"admins": "x" * 500}, (("admins",), f"expected a list, got '{'x' * 55}...")),
    ("users", ((), "expected a mapping with users, roles, groups, channels, services, admins, "
                   "default_channel, got 'users'")),
])
def test_the_wrong_kind_of_value_says_what_was_expected(document: object, expected: tuple) -> None:
    assert problems(document) == [expected]


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.dates(), st.sampled_from(["", "bob", "U0BOB0001", "role:x", "Bad Name", "a\n"]))
_KEYS = st.one_of(st.sampled_from(["users", "roles", "groups", "channels", "services", "admins",
                                   "default_channel", "name", "slack_id", "email", "logins",
                                   "members", "owner", "description", "bob", "x"]),
                  st.integers(), st.none(), st.booleans())
_DOCUMENTS = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=5)), max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS)
def test_any_document_reads_or_names_its_problems(document: object) -> None:
    try:
        org = OrgFile.from_data(document)
    except OrgFileError as exc:
        assert exc.problems
        assert all(isinstance(path, tuple) and isinstance(message, str) and message
                   for path, message in exc.problems)
    else:
        assert OrgFile.from_data(org.to_data()) == org
