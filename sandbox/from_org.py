"""A sandbox workspace peopled from Baton's org file: its users, user groups and channels."""

from __future__ import annotations

import time

from gates.org import Org, SpecError
from sandbox.records import SlackApp, Team
from sandbox.surfaces import TRIGGER_TTL
from sandbox.workspace import Clock, Workspace


def seed_from_org(workspace: Workspace, org: Org) -> None:
    """Add the org file's people, groups and channels (with their Slack ids) to `workspace`.

    People without a Slack id still get a sandbox user (with a made-up id), so everyone in
    the org file can act in the sandbox; #general exists as in every Slack workspace.
    """
    for key, user in org.data.users.items():
        if workspace.find_user(key) is None:
            workspace.add_user(key, id=user.slack_id, real_name=user.name or key, email=user.email,
                               title=role_title(org, key))
    for key, group in org.data.groups.items():
        members = []
        for member in group.members:
            try:
                principal = org.principal(member)
            except SpecError:
                continue
            slack_id = org.slack_id(principal) or _sandbox_id(workspace, principal)
            if slack_id:
                members.append(slack_id)
        workspace.add_usergroup(key, members, id=group.slack_id)
    for key, channel in org.data.channels.items():
        if workspace.find_channel(channel.slack_id or key) is None:
            workspace.add_channel(key, id=channel.slack_id)
    default = org.data.default_channel
    for name in (default, "general"):
        if name and org.channel_id(name) is None and workspace.find_channel(name) is None:
            workspace.add_channel(name)


def role_title(org: Org, key: str) -> str:
    """A person's roles (and adminship), as the sandbox shows them next to their name."""
    try:
        roles = org.roles_of(key)
        admin = org.is_admin(key)
    except SpecError:
        return ""
    return ", ".join([*roles, *(["admin"] if admin else [])])


def workspace_from_org(org: Org, *, team: Team | None = None, app: SlackApp | None = None,
                       clock: Clock = time.time, trigger_ttl: float = TRIGGER_TTL) -> Workspace:
    workspace = Workspace(team, app, clock=clock, trigger_ttl=trigger_ttl)
    seed_from_org(workspace, org)
    return workspace


def _sandbox_id(workspace: Workspace, principal: str) -> str | None:
    user = workspace.find_user(principal)
    return user.id if user else None
