"""What an org file holds, as frozen data, and the reading of a parsed document into it that
names every problem at its place (`users.bob.slack_id`), all at once.

Read with the standard library alone: every command that names people reads the org file,
`baton status` among them, and a validation library's import would cost it more than the
reading does. Each field's type says what it takes (text, an optional text, a list, a map of
names to entries); a field's `Annotated` checks add what the type cannot say (a Slack user
id's shape, one entry per Slack user).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from functools import cache
from types import MappingProxyType, NoneType, UnionType
from typing import Annotated, Any, get_args, get_origin, get_type_hints

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}\Z")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*\Z")  # every key under users, roles, groups, ...
_LOGIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._$-]{0,63}\Z")  # a Unix or Windows account name

Place = tuple[str | int, ...]  # keys and list indexes, from the top of the document
Problem = tuple[Place, str]  # where in the document, and what is wrong there
# A field's own check: the problems in its (well-typed) value, at paths below the field's
Check = Callable[[Any], Iterator[Problem]]


def slack_user_id(value: str | None) -> Iterator[Problem]:
    if value is not None and not SLACK_USER_ID.match(value):
        yield (), f"expected a Slack user id such as U0123ABCD, got {value!r}"


def login_name(value: str) -> Iterator[Problem]:
    if not _LOGIN.match(value):
        yield (), f"{value!r} is not a login name: letters, digits, '.', '_', '-'"


def one_entry_per_slack_user(users: Mapping[str, OrgUser]) -> Iterator[Problem]:
    # Four-eyes and "who may decide" compare principals: one Slack user under two keys
    # would be the requester under one and an approver under the other.
    seen: dict[str, str] = {}
    for key, user in users.items():
        if user is None or user.slack_id is None:  # None: an entry with problems of its own
            continue
        if user.slack_id in seen:
            yield (key, "slack_id"), (f"users {seen[user.slack_id]!r} and {key!r} have the same "
                                      f"slack_id {user.slack_id}: one person, one entry")
        else:
            seen[user.slack_id] = key


def _nothing() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgUser:
    name: str | None = None
    slack_id: Annotated[str | None, slack_user_id] = None
    email: str | None = None
    # operating-system logins that act as this person on the command line (`baton run` without
    # --as): who is acting is never inferred from a login the org file does not list
    logins: tuple[Annotated[str, login_name], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgGroup:
    slack_id: str | None = None  # the Slack user group's id (S...)
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgService:
    """An agent or system outside Baton that asks for approvals with an API token."""

    name: str | None = None
    description: str = ""
    owner: str | None = None  # the person who answers for it


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgChannel:
    slack_id: str | None = None  # the Slack channel's id (C...)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgFile:
    # read-only mappings: an Org's indexes (people by Slack id, by login) are built once
    users: Annotated[Mapping[str, OrgUser], one_entry_per_slack_user] = field(default_factory=_nothing)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=_nothing)
    groups: Mapping[str, OrgGroup] = field(default_factory=_nothing)
    channels: Mapping[str, OrgChannel] = field(default_factory=_nothing)
    services: Mapping[str, OrgService] = field(default_factory=_nothing)
    admins: tuple[str, ...] = ()
    default_channel: str | None = None

    @classmethod
    def from_data(cls, data: Any) -> OrgFile:
        """The org file in `data` (as YAML parses it); OrgFileError names every problem."""
        problems: list[Problem] = []
        org = _read(data, cls, (), problems)
        if problems:
            raise OrgFileError(problems)
        return org

    def to_data(self) -> dict[str, Any]:
        """Plain dicts and lists, without the fields that are not set: YAML to write back."""
        return _plain(self)


class OrgFileError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{_dotted(path)}: {message}" for path, message in problems))
        self.problems = problems


def _read(value: Any, kind: Any, path: Place, problems: list[Problem]) -> Any:
    """`value` as `kind`; where it is not, its problems go to `problems` (and the part that
    is wrong reads as None: nothing is built from a document with problems). A field's checks
    look at what was read, entries with problems of their own included (as None)."""
    checks: tuple[Check, ...] = ()
    if get_origin(kind) is Annotated:
        kind, *checks = get_args(kind)
    origin, args = get_origin(kind), get_args(kind)
    if origin is UnionType and NoneType in args:  # an optional value: X | None
        (kind,) = (arg for arg in args if arg is not NoneType)
        result = None if value is None else _read(value, kind, path, problems)
    elif kind is str:
        result = value if isinstance(value, str) else _wrong(value, "text", path, problems)
    elif origin is tuple:  # a list
        if isinstance(value, list):
            result = tuple(_read(item, args[0], (*path, i), problems) for i, item in enumerate(value))
        else:
            result = _wrong(value, "a list", path, problems)
    elif origin is Mapping:  # names to entries
        result = _entries(value, args[1], path, problems)
    elif is_dataclass(kind):
        result = _entry(value, kind, path, problems)
    else:
        raise TypeError(f"an org file field of type {kind!r} is not read")
    if result is not None:
        problems.extend(((*path, *where), message) for check in checks for where, message in check(result))
    return result


def _entries(value: Any, kind: Any, path: Place, problems: list[Problem]) -> Mapping[str, Any] | None:
    if not isinstance(value, dict):
        return _wrong(value, "a mapping of names to their entries", path, problems)
    found = {}
    for key, item in value.items():
        if not isinstance(key, str) or not NAME.match(key):
            problems.append(((*path, str(key)), f"{key!r} is not a valid name: use lower-case "
                                                 "letters, digits, '.', '_', '-'"))
        found[key] = _read(item, kind, (*path, str(key)), problems)
    return MappingProxyType(found)


def _entry(value: Any, kind: type, path: Place, problems: list[Problem]) -> Any:
    keys = _keys(kind)
    if not isinstance(value, dict):
        return _wrong(value, f"a mapping with {', '.join(keys)}", path, problems)
    before = len(problems)
    read = {}
    for key, item in value.items():  # in the document's order, as its problems are listed
        if key in keys:
            read[key] = _read(item, keys[key], (*path, key), problems)
            continue
        close = difflib.get_close_matches(str(key), keys, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; expected one of {', '.join(keys)}"
        problems.append(((*path, str(key)), f"unknown key {key!r}{hint}"))
    return kind(**read) if len(problems) == before else None


@cache
def _keys(kind: type) -> dict[str, Any]:
    """An entry's keys, in the order they are declared, and the type each takes."""
    hints = get_type_hints(kind, include_extras=True)
    return {f.name: hints[f.name] for f in fields(kind)}


def _wrong(value: Any, expected: str, path: Place, problems: list[Problem]) -> None:
    if isinstance(value, dict | list):
        got = "a mapping" if isinstance(value, dict) else "a list"
        problems.append((path, f"expected {expected}, got {got}"))
    elif value is None:
        problems.append((path, f"expected {expected}, got nothing"))
    elif expected == "text" and isinstance(value, bool | int | float | date):
        # YAML reads 5, yes, 1.5 and 2024-01-01 as other things than text
        problems.append((path, f"expected text, got {value}: put it in quotes if it is meant as text"))
    else:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:56] + "..."
        problems.append((path, f"expected {expected}, got {shown}"))


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        value = {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _dotted(path: Place) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")

