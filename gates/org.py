"""The org file: who people are, which roles they hold, who the admins are.

Flows name roles (`role:finance-lead`), never people, so a team changes who approves
by editing one file. A person is identified by a *principal*: their key in the org file
(`bob`), or their Slack user id (`U0123ABC`) when the org file does not list them.

Approver and notify specs:

| spec                 | means                                                     |
|----------------------|-----------------------------------------------------------|
| `role:finance-lead`  | every member of the role                                  |
| `user:bob`, `bob`    | one person, by org key                                    |
| `U0123ABC`           | one person, by Slack user id                              |
| `group:finance-team` | a Slack user group: its listed members, plus its live members in Slack |
| `channel:#finance`   | a channel (notify targets only; a channel cannot decide)  |
| `service:billing-agent` | an agent outside Baton (API tokens act as it): never decides |
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from gates.org_data import SLACK_USER_ID, OrgFile

NO_ORG_FILE = "(no org file)"


class Directory(Protocol):
    """Live group membership (the Slack bot implements it with usergroups.users.list)."""

    def group_members(self, group_slack_id: str) -> set[str]: ...


class SpecError(ValueError):
    pass


SERVICE = "service:"


def is_service(principal: str) -> bool:
    """Whether `principal` is a service (an agent), which never decides a gate."""
    return principal.startswith(SERVICE)


class Org:
    def __init__(self, data: OrgFile, source: str = "org.yaml") -> None:
        self.data = data
        self.source = source
        self._by_slack = {u.slack_id: key for key, u in data.users.items() if u.slack_id}
        self._by_login = {login: key for key, u in data.users.items() for login in u.logins}
        self.directory: Directory | None = None

    @classmethod
    def empty(cls) -> Org:
        return cls(OrgFile(), source=NO_ORG_FILE)

    @property
    def known_users(self) -> str:
        """Who can be named, for a message: "users in org.yaml: alice, bob"."""
        if self.source == NO_ORG_FILE:
            return "there is no org file (BATON_ORG), so only Slack user ids (U0123ABCD) name people"
        if not self.data.users:
            return f"{self.source} lists no users, so only Slack user ids (U0123ABCD) name people"
        return f"users in {self.source}: {', '.join(sorted(self.data.users))}"

    # -- people ---------------------------------------------------------------------
    def principal(self, who: str) -> str:
        """Map an org key, `@key`, `user:key`, Slack id or `service:NAME` to a principal;
        raise if unknown."""
        if who.strip().startswith(SERVICE):
            return self.service(who.strip())
        name = who.strip().removeprefix("user:").removeprefix("@")
        if name in self.data.users:
            return name
        if name in self._by_slack:
            return self._by_slack[name]
        if SLACK_USER_ID.match(name):
            return name
        raise SpecError(f"unknown user {who!r}; {self.known_users}")

    def principal_for_login(self, login: str) -> str | None:
        """The person an operating-system login acts as (their `logins`), or None."""
        return self._by_login.get(login)

    def login_owners(self) -> dict[str, list[str]]:
        """Each login listed in the org file and the people who list it (one, when valid)."""
        owners: dict[str, list[str]] = {}
        for key, user in self.data.users.items():
            for login in user.logins:
                owners.setdefault(login, []).append(key)
        return owners

    def service(self, spec: str) -> str:
        """`service:NAME` as a principal, if the org file declares that service."""
        name = spec.removeprefix(SERVICE)
        if name in self.data.services:
            return SERVICE + name
        known = ", ".join(SERVICE + n for n in sorted(self.data.services)) or "none"
        raise SpecError(f"unknown service {spec!r}; services in {self.source}: {known}")

    def principal_for_slack(self, slack_id: str) -> str:
        return self._by_slack.get(slack_id, slack_id)

    def slack_id(self, principal: str) -> str | None:
        user = self.data.users.get(principal)
        if user is not None:
            return user.slack_id
        return principal if SLACK_USER_ID.match(principal) else None

    def display(self, principal: str) -> str:
        if is_service(principal):
            service = self.data.services.get(principal.removeprefix(SERVICE))
            name = principal.removeprefix(SERVICE)
            return (service.name or name) if service else principal
        user = self.data.users.get(principal)
        return (user.name or principal) if user else principal

    def is_admin(self, principal: str) -> bool:
        return principal in self.resolve_many(self.data.admins)

    @property
    def admins(self) -> set[str]:
        return self.resolve_many(self.data.admins)

    # -- specs ----------------------------------------------------------------------
    def check_spec(self, spec: str, *, allow_channel: bool = False) -> None:
        """Raise SpecError if `spec` names nothing in the org file."""
        kind, _, name = spec.partition(":")
        if not _:
            self.principal(spec)
            return
        if kind == "role":
            if name not in self.data.roles:
                raise SpecError(f"unknown role {name!r}; roles in {self.source}: "
                                + (", ".join(sorted(self.data.roles)) or "none"))
        elif kind == "group":
            if name not in self.data.groups:
                raise SpecError(f"unknown group {name!r}; groups in {self.source}: "
                                + (", ".join(sorted(self.data.groups)) or "none"))
        elif kind == "user":
            self.principal(name)
        elif kind == "service":
            self.service(spec)
        elif kind == "channel":
            if not allow_channel:
                raise SpecError(f"{spec!r}: a channel can be notified but cannot decide")
            if not self.channel_id(name):
                raise SpecError(f"unknown channel {name!r}; channels in {self.source}: "
                                + (", ".join(sorted(self.data.channels)) or "none")
                                + " (or use a Slack channel id such as C0123ABCD)")
        else:
            raise SpecError(
                f"{spec!r}: expected role:NAME, user:NAME, group:NAME, channel:NAME, "
                "service:NAME or a Slack user id"
            )

    def channel_id(self, name: str) -> str | None:
        name = name.removeprefix("#")
        channel = self.data.channels.get(name)
        if channel is not None:
            return channel.slack_id or name
        return name if re.match(r"^[CGD][A-Z0-9]{2,}\Z", name) else None

    def resolve(self, spec: str) -> set[str]:
        """The principals a spec names (empty for channels)."""
        kind, sep, name = spec.partition(":")
        if not sep:
            return {self.principal(spec)}
        if kind == "role":
            members: set[str] = set()
            for member in self.data.roles.get(name, []):
                members |= self.resolve(member)
            return members
        if kind == "group":
            group = self.data.groups.get(name)
            if group is None:
                return set()
            found = {self.principal(m) for m in group.members}
            if self.directory is not None and group.slack_id:
                found |= {self.principal_for_slack(m)
                          for m in self.directory.group_members(group.slack_id)}
            return found
        if kind == "user":
            return {self.principal(name)}
        if kind == "service":
            return {self.service(spec)} if name in self.data.services else set()
        return set()

    def resolve_many(self, specs: Iterable[str]) -> set[str]:
        found: set[str] = set()
        for spec in specs:
            found |= self.resolve(spec)
        return found

    def roles_of(self, principal: str) -> list[str]:
        return sorted(role for role in self.data.roles if principal in self.resolve(f"role:{role}"))
