"""Loading and strictly validating the org file. Apart from the flow files' loader
(orchestrator/loader.py): the commands that only show what is stored, `baton status` among
them, read the org file to name people, and need neither flows nor CEL to do it."""

from __future__ import annotations

from pathlib import Path

from gates.org import Org, SpecError, is_service
from gates.org_data import OrgFile, OrgFileError
from orchestrator.errors import FlowError
from orchestrator.yamlfile import read_yaml

ORG_FILE_NAME = "org.yaml"


def load_org(path: Path) -> Org:
    """Load the org file; a missing file gives an empty org (anyone can start runs, only
    Slack user ids can be named)."""
    if not path.exists():
        return Org.empty()
    doc = read_yaml(path, max_bytes=None, max_values=None)
    if doc.data is None:
        return Org(OrgFile(), source=str(path))
    if not isinstance(doc.data, dict):
        raise FlowError([doc.problem((), "expected a mapping with users, roles, admins")])
    try:
        data = OrgFile.from_data(doc.data)
    except OrgFileError as exc:
        raise FlowError([doc.problem(path, message) for path, message in exc.problems]) from None
    org = Org(data, source=str(path))
    problems = []
    for role, members in data.roles.items():
        for i, member in enumerate(members):
            if member.startswith("role:"):
                problems.append(doc.problem(("roles", role, i),
                                            "roles list people or group:NAME, not other roles"))
                continue
            try:
                org.check_spec(member)
            except SpecError as exc:
                problems.append(doc.problem(("roles", role, i), str(exc)))
    for name, group in data.groups.items():
        for i, member in enumerate(group.members):
            try:
                org.principal(member)
            except SpecError as exc:
                problems.append(doc.problem(("groups", name, "members", i), str(exc)))
    for i, admin in enumerate(data.admins):
        try:
            org.check_spec(admin)
            if any(is_service(p) for p in org.resolve(admin)):
                problems.append(doc.problem(("admins", i), "a service cannot be an admin: "
                                                          "admins are people"))
        except SpecError as exc:
            problems.append(doc.problem(("admins", i), str(exc)))
    for name, service in data.services.items():
        if service.owner is not None:
            try:
                if is_service(org.principal(service.owner)):
                    raise SpecError("a service's owner is a person")
            except SpecError as exc:
                problems.append(doc.problem(("services", name, "owner"), str(exc)))
    for login, owners in org.login_owners().items():
        for owner in owners[1:]:
            problems.append(doc.problem(("users", owner, "logins", data.users[owner].logins.index(login)),
                                        f"login {login!r} is already {owners[0]}'s: a login acts as "
                                        "one person"))
    if problems:
        raise FlowError(problems)
    return org
