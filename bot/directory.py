"""Slack user-group membership for `group:` approvers, refreshed in the background.

Gates resolve approvers inside a database transaction, where calling Slack is not
allowed; they read this cache instead, which a thread refreshes with
usergroups.users.list. Until the first refresh, the members listed in the org file count.
"""

from __future__ import annotations

import threading

import structlog
from slack_sdk import WebClient

from gates.org import Org
from orchestrator.workers import BackgroundLoop

log = structlog.get_logger("baton.directory")


class SlackDirectory:
    def __init__(self, org: Org, client: WebClient, *, every: float = 300.0) -> None:
        self.org = org
        self.client = client
        self._members: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._loop = BackgroundLoop("baton-directory", self.refresh, every)

    def group_members(self, group_slack_id: str) -> set[str]:
        with self._lock:
            return set(self._members.get(group_slack_id, set()))

    def refresh(self) -> None:
        for group in self.org.data.groups.values():
            if not group.slack_id:
                continue
            try:
                users = self.client.usergroups_users_list(usergroup=group.slack_id).get("users", [])
            except Exception as exc:
                log.warning("usergroup_refresh_failed", group=group.slack_id, error=str(exc))
                continue
            with self._lock:
                self._members[group.slack_id] = set(users)

    def start(self) -> None:
        self.org.directory = self
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        if self.org.directory is self:
            self.org.directory = None
