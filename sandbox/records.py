"""What a fake Slack workspace holds, as immutable records.

Records are frozen: the workspace replaces a record to change it, so a reader on another
thread (a test, the sandbox UI) never sees one half-updated. `to_api` renders each as the
JSON object Slack's Web API returns for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]


@dataclass(frozen=True)
class Team:
    id: str = "T0BATON00"
    domain: str = "baton-sandbox"
    name: str = "Baton Sandbox"


@dataclass(frozen=True)
class SlackApp:
    """The Slack app as Slack knows it: ids, tokens and the secret it signs requests with."""

    app_id: str = "A0BATON00"
    bot_user_id: str = "U0BATON00"
    bot_id: str = "B0BATON00"
    bot_name: str = "baton"
    bot_token: str = "xoxb-sandbox-bot-token"
    app_token: str = "xapp-sandbox-app-token"
    signing_secret: str = "sandbox-signing-secret"
    # The legacy `token` field Slack still puts in every payload it sends.
    verification_token: str = "sandbox-verification-token"


@dataclass(frozen=True)
class User:
    id: str
    name: str
    real_name: str = ""
    is_bot: bool = False
    bot_id: str | None = None
    email: str | None = None
    # Slack's profile title; the sandbox puts a person's roles from the org file there.
    title: str = ""

    def to_api(self, team: Team) -> JSON:
        profile: JSON = {
            "real_name": self.real_name or self.name,
            "display_name": self.name,
            "real_name_normalized": self.real_name or self.name,
            "display_name_normalized": self.name,
            "team": team.id,
            "title": self.title,
        }
        if self.email:
            profile["email"] = self.email
        if self.bot_id:
            profile["bot_id"] = self.bot_id
        return {
            "id": self.id,
            "team_id": team.id,
            "name": self.name,
            "deleted": False,
            "real_name": self.real_name or self.name,
            "tz": "Europe/London",
            "tz_label": "Greenwich Mean Time",
            "tz_offset": 0,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "updated": 1700000000,
        }


ChannelKind = Literal["channel", "private", "im", "mpim"]


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    kind: ChannelKind = "channel"
    # The other party of a DM with the bot.
    user: str | None = None
    members: tuple[str, ...] = ()
    created: int = 1700000000

    @property
    def is_dm(self) -> bool:
        return self.kind == "im"

    def to_api(self) -> JSON:
        body: JSON = {
            "id": self.id,
            "created": self.created,
            "is_archived": False,
            "is_channel": self.kind == "channel",
            "is_group": self.kind == "private",
            "is_im": self.kind == "im",
            "is_mpim": self.kind == "mpim",
            "is_private": self.kind != "channel",
            "is_member": True,
        }
        if self.kind == "im":
            body.update({"user": self.user, "is_open": True, "is_user_deleted": False})
        else:
            body.update({"name": self.name, "name_normalized": self.name,
                         "is_general": self.name == "general"})
        return body


@dataclass(frozen=True)
class Message:
    channel: str
    ts: str
    text: str = ""
    blocks: tuple[JSON, ...] = ()
    user: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    metadata: JSON | None = None
    files: tuple[JSON, ...] = ()
    edited: JSON | None = None
    # Earlier versions of this message, oldest first (chat.update keeps none in Slack;
    # the sandbox keeps them so tests and the UI can show what changed).
    history: tuple[Message, ...] = ()

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_api(self, team: Team, *, with_metadata: bool = True) -> JSON:
        body: JSON = {"type": "message", "ts": self.ts, "text": self.text, "team": team.id}
        if self.user:
            body["user"] = self.user
        if self.bot_id:
            body["bot_id"] = self.bot_id
            body["app_id"] = self.app_id
        if self.blocks:
            body["blocks"] = list(self.blocks)
        if self.thread_ts:
            body["thread_ts"] = self.thread_ts
        if self.metadata and with_metadata:
            body["metadata"] = self.metadata
        if self.files:
            body["files"] = list(self.files)
            body["upload"] = True
        if self.edited:
            body["edited"] = self.edited
        return body


@dataclass(frozen=True)
class Ephemeral:
    """A message only `user` sees, in `channel`; Slack never stores these."""

    channel: str
    user: str
    ts: str
    text: str = ""
    blocks: tuple[JSON, ...] = ()
    thread_ts: str | None = None
    bot_id: str | None = None

    def to_api(self, team: Team) -> JSON:
        body: JSON = {"type": "message", "subtype": "bot_message", "ts": self.ts, "text": self.text,
                      "team": team.id, "bot_id": self.bot_id, "is_ephemeral": True}
        if self.blocks:
            body["blocks"] = list(self.blocks)
        if self.thread_ts:
            body["thread_ts"] = self.thread_ts
        return body


ViewType = Literal["modal", "home"]


@dataclass(frozen=True)
class View:
    id: str
    user: str
    type: ViewType
    hash: str
    blocks: tuple[JSON, ...] = ()
    title: JSON | None = None
    submit: JSON | None = None
    close: JSON | None = None
    callback_id: str = ""
    private_metadata: str = ""
    external_id: str = ""
    notify_on_close: bool = False
    clear_on_close: bool = False
    state: JSON = field(default_factory=lambda: {"values": {}})
    previous_view_id: str | None = None
    root_view_id: str | None = None
    # Set when the app answered a view_submission with response_action "errors".
    errors: JSON | None = None

    def to_api(self, team: Team, app: SlackApp) -> JSON:
        return {
            "id": self.id,
            "team_id": team.id,
            "type": self.type,
            "blocks": list(self.blocks),
            "private_metadata": self.private_metadata,
            "callback_id": self.callback_id,
            "state": self.state,
            "hash": self.hash,
            "title": self.title,
            "clear_on_close": self.clear_on_close,
            "notify_on_close": self.notify_on_close,
            "close": self.close,
            "submit": self.submit,
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id or self.id,
            "app_id": app.app_id,
            "external_id": self.external_id,
            "app_installed_team_id": team.id,
            "bot_id": app.bot_id,
        }


@dataclass(frozen=True)
class UserGroup:
    id: str
    handle: str
    name: str = ""
    members: tuple[str, ...] = ()

    def to_api(self, team: Team) -> JSON:
        return {"id": self.id, "team_id": team.id, "is_usergroup": True, "name": self.name or self.handle,
                "handle": self.handle, "user_count": len(self.members), "users": list(self.members)}


@dataclass(frozen=True)
class File:
    id: str
    name: str
    length: int
    created: int
    title: str = ""
    alt_txt: str | None = None
    content: bytes | None = None
    channels: tuple[str, ...] = ()
    completed: bool = False

    def to_api(self, team: Team, app: SlackApp) -> JSON:
        return {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title or self.name,
            "mimetype": "text/plain" if self.name.endswith((".txt", ".md", ".json", ".csv")) else
            "image/png" if self.name.endswith(".png") else "application/octet-stream",
            "filetype": self.name.rsplit(".", 1)[-1] if "." in self.name else "binary",
            "user": app.bot_user_id,
            "user_team": team.id,
            "size": len(self.content) if self.content is not None else self.length,
            "is_external": False,
            "is_public": bool(self.channels),
            "channels": [c for c in self.channels if not c.startswith("D")],
            "ims": [c for c in self.channels if c.startswith("D")],
            "groups": [],
            "url_private": f"https://files.slack.com/files-pri/{team.id}-{self.id}/{self.name}",
            "permalink": f"https://{team.domain}.slack.com/files/{app.bot_user_id}/{self.id}/{self.name}",
        }


@dataclass(frozen=True)
class Trigger:
    id: str
    user: str
    issued_at: float
    used: bool = False


@dataclass(frozen=True)
class ResponseUrl:
    """Where a slash command or an interaction may answer; Slack allows 5 uses in 30 minutes."""

    token: str
    user: str
    channel: str | None
    issued_at: float
    # The message the interaction came from, which replace_original / delete_original act on.
    message_ts: str | None = None
    is_ephemeral: bool = False
    uses: int = 0


@dataclass(frozen=True)
class Change:
    """One change to the workspace, for a UI that polls or streams."""

    version: int
    kind: str
    key: str
