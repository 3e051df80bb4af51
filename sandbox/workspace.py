"""The in-memory state of a fake Slack workspace.

One lock guards everything; every change bumps `version`, so a UI can poll
`changes_since(version)`, stream through `subscribe`, and a test can `wait_for` what the
bot does on another thread. Ids and `ts` strings look like Slack's, and `ts` values are
unique and strictly increasing even when the injected clock stands still.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

from sandbox.errors import ApiError
from sandbox.records import (
    JSON,
    Change,
    Channel,
    Ephemeral,
    File,
    Message,
    SlackApp,
    Team,
    User,
    UserGroup,
)
from sandbox.snapshot import Snapshots
from sandbox.surfaces import TRIGGER_TTL, Surfaces

Clock = Callable[[], float]
T = TypeVar("T")


class Workspace(Surfaces, Snapshots):
    """Everything a fake Slack workspace holds; views, triggers and response URLs come from
    Surfaces, saving and restoring it from Snapshots."""

    def __init__(self, team: Team | None = None, app: SlackApp | None = None, *,
                 clock: Clock = time.time, trigger_ttl: float = TRIGGER_TTL) -> None:
        self.team = team or Team()
        self.app = app or SlackApp()
        self.clock = clock
        # How long a click's trigger_id opens a modal: Slack's three seconds by default.
        # Harnesses on wall time lengthen it, because a loaded machine is not a slow bot.
        self.trigger_ttl = trigger_ttl
        self._cond = threading.Condition(threading.RLock())
        self._version = 0
        self._changes: deque[Change] = deque(maxlen=2000)
        self._subscribers: list[Callable[[Change], None]] = []
        self._counter = itertools.count(1)
        self._last_ts_us = 0
        self._users: dict[str, User] = {}
        self._channels: dict[str, Channel] = {}
        self._dms: dict[str, str] = {}
        self._messages: dict[str, dict[str, Message]] = {}
        self._ephemerals: list[Ephemeral] = []
        self._groups: dict[str, UserGroup] = {}
        self._files: dict[str, File] = {}
        self._init_surfaces()
        bot = User(id=self.app.bot_user_id, name=self.app.bot_name, real_name=self.app.bot_name.title(),
                   is_bot=True, bot_id=self.app.bot_id)
        self._users[bot.id] = bot

    # -- change tracking --------------------------------------------------------------
    @contextmanager
    def _mutation(self) -> Iterator[list[tuple[str, str]]]:
        """Hold the lock for one change; subscribers hear of it after the lock is released."""
        pending: list[tuple[str, str]] = []
        with self._cond:
            yield pending
            changes = []
            for kind, key in pending:
                self._version += 1
                changes.append(Change(self._version, kind, key))
            self._changes.extend(changes)
            if changes:
                self._cond.notify_all()
            subscribers = tuple(self._subscribers)
        for change in changes:
            for subscriber in subscribers:
                subscriber(change)

    @property
    def version(self) -> int:
        with self._cond:
            return self._version

    def changes_since(self, version: int) -> list[Change]:
        with self._cond:
            return [c for c in self._changes if c.version > version]

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call `callback` after each change (on the changing thread); returns an unsubscribe."""
        with self._cond:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def wait_for(self, predicate: Callable[[Workspace], T | None], timeout: float = 2.0) -> T:
        """Block until `predicate(self)` is truthy (re-checked after each change); return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate(self)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"workspace did not reach the expected state within {timeout}s")
                self._cond.wait(remaining)

    # -- ids and timestamps -----------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._counter):08X}"

    def next_ts(self) -> str:
        with self._cond:
            now_us = max(int(self.clock() * 1_000_000), self._last_ts_us + 1)
            self._last_ts_us = now_us
        return f"{now_us // 1_000_000}.{now_us % 1_000_000:06d}"

    # -- people and places ------------------------------------------------------------
    def add_user(self, name: str, *, id: str | None = None, real_name: str = "", email: str | None = None,
                 is_bot: bool = False, title: str = "") -> User:
        with self._mutation() as changes:
            user = User(id=id or self.new_id("U"), name=name, real_name=real_name, email=email, is_bot=is_bot,
                        title=title)
            self._users[user.id] = user
            changes.append(("user", user.id))
        return user

    def add_channel(self, name: str, *, id: str | None = None, private: bool = False,
                    members: Iterable[str] = ()) -> Channel:
        with self._mutation() as changes:
            if self.find_channel(name) is not None:
                raise ValueError(f"channel #{name} exists already")
            channel = Channel(id=id or self.new_id("G" if private else "C"), name=name.removeprefix("#"),
                              kind="private" if private else "channel", members=tuple(members),
                              created=int(self.clock()))
            self._channels[channel.id] = channel
            self._messages[channel.id] = {}
            changes.append(("channel", channel.id))
        return channel

    def add_usergroup(self, handle: str, members: Iterable[str] = (), *, id: str | None = None,
                      name: str = "") -> UserGroup:
        with self._mutation() as changes:
            group = UserGroup(id=id or self.new_id("S"), handle=handle, name=name, members=tuple(members))
            self._groups[group.id] = group
            changes.append(("usergroup", group.id))
        return group

    def set_usergroup_members(self, group_id: str, members: Iterable[str]) -> UserGroup:
        with self._mutation() as changes:
            group = replace(self.usergroup(group_id), members=tuple(members))
            self._groups[group.id] = group
            changes.append(("usergroup", group.id))
        return group

    def user(self, user_id: str) -> User:
        with self._cond:
            if user_id not in self._users:
                raise ApiError("user_not_found")
            return self._users[user_id]

    def users(self) -> list[User]:
        with self._cond:
            return list(self._users.values())

    def find_user(self, name: str) -> User | None:
        with self._cond:
            return next((u for u in self._users.values() if u.name == name or u.id == name), None)

    def usergroup(self, group_id: str) -> UserGroup:
        with self._cond:
            if group_id not in self._groups:
                raise ApiError("no_such_subteam")
            return self._groups[group_id]

    def usergroups(self) -> list[UserGroup]:
        with self._cond:
            return list(self._groups.values())

    def channel(self, channel_id: str) -> Channel:
        with self._cond:
            if channel_id not in self._channels:
                raise ApiError("channel_not_found")
            return self._channels[channel_id]

    def channels(self) -> list[Channel]:
        with self._cond:
            return list(self._channels.values())

    def find_channel(self, name_or_id: str) -> Channel | None:
        with self._cond:
            if name_or_id in self._channels:
                return self._channels[name_or_id]
            name = name_or_id.removeprefix("#")
            return next((c for c in self._channels.values() if c.kind != "im" and c.name == name), None)

    def resolve_channel(self, value: str) -> Channel:
        """A channel as Slack resolves `channel=`: an id, `#name` / name, or a user id (their DM)."""
        channel = self.find_channel(value)
        if channel is not None:
            return channel
        with self._cond:
            if value in self._users:
                return self.open_dm(value)
        raise ApiError("channel_not_found")

    def open_dm(self, user_id: str) -> Channel:
        with self._mutation() as changes:
            user = self.user(user_id)
            if user.id in self._dms:
                return self._channels[self._dms[user.id]]
            channel = Channel(id=self.new_id("D"), name=user.id, kind="im", user=user.id,
                              members=(user.id, self.app.bot_user_id), created=int(self.clock()))
            self._channels[channel.id] = channel
            self._messages[channel.id] = {}
            self._dms[user.id] = channel.id
            changes.append(("channel", channel.id))
        return channel

    def dm_of(self, user_id: str) -> Channel | None:
        with self._cond:
            channel_id = self._dms.get(user_id)
            return self._channels[channel_id] if channel_id else None

    def open_group_dm(self, user_ids: Iterable[str]) -> Channel:
        members = tuple(sorted({*user_ids, self.app.bot_user_id}))
        with self._mutation() as changes:
            for user_id in members:
                self.user(user_id)
            existing = next((c for c in self._channels.values() if c.kind == "mpim" and c.members == members),
                            None)
            if existing is not None:
                return existing
            name = "mpdm-" + "--".join(self._users[m].name for m in members) + "-1"
            channel = Channel(id=self.new_id("C"), name=name, kind="mpim", members=members,
                              created=int(self.clock()))
            self._channels[channel.id] = channel
            self._messages[channel.id] = {}
            changes.append(("channel", channel.id))
        return channel

    # -- messages ---------------------------------------------------------------------
    def post_message(self, channel_id: str, *, text: str = "", blocks: Iterable[JSON] = (),
                     author: str | None = None, thread_ts: str | None = None, metadata: JSON | None = None,
                     files: Iterable[JSON] = ()) -> Message:
        author = author or self.app.bot_user_id
        with self._mutation() as changes:
            self.channel(channel_id)
            if thread_ts is not None:
                parent = self._messages[channel_id].get(thread_ts)
                if parent is None:
                    raise ApiError("thread_not_found")
                thread_ts = parent.thread_ts or parent.ts
            is_bot = author == self.app.bot_user_id
            message = Message(channel=channel_id, ts=self.next_ts(), text=text, blocks=tuple(blocks),
                              user=author, bot_id=self.app.bot_id if is_bot else None,
                              app_id=self.app.app_id if is_bot else None, thread_ts=thread_ts,
                              metadata=metadata, files=tuple(files))
            self._messages[channel_id][message.ts] = message
            changes.append(("message", f"{channel_id}/{message.ts}"))
        return message

    def update_message(self, channel_id: str, ts: str, *, text: str | None = None,
                       blocks: Iterable[JSON] | None = None, metadata: JSON | None = None,
                       editor: str | None = None) -> Message:
        with self._mutation() as changes:
            current = self.message(channel_id, ts)
            editor = editor or self.app.bot_user_id
            if current.user != editor:
                raise ApiError("cant_update_message")
            updated = replace(
                current,
                text=current.text if text is None else text,
                blocks=current.blocks if blocks is None else tuple(blocks),
                metadata=current.metadata if metadata is None else metadata,
                edited={"user": editor, "ts": self.next_ts()},
                history=(*current.history, replace(current, history=())),
            )
            self._messages[channel_id][ts] = updated
            changes.append(("message", f"{channel_id}/{ts}"))
        return updated

    def delete_message(self, channel_id: str, ts: str, *, by: str | None = None) -> None:
        with self._mutation() as changes:
            current = self.message(channel_id, ts)
            if current.user != (by or self.app.bot_user_id):
                raise ApiError("cant_delete_message")
            del self._messages[channel_id][ts]
            changes.append(("message_deleted", f"{channel_id}/{ts}"))

    def message(self, channel_id: str, ts: str) -> Message:
        with self._cond:
            self.channel(channel_id)
            found = self._messages[channel_id].get(ts)
            if found is None:
                raise ApiError("message_not_found")
            return found

    def messages(self, channel_id: str | None = None, *, include_replies: bool = True) -> list[Message]:
        """Messages oldest first: of one channel, or of the whole workspace."""
        with self._cond:
            if channel_id is not None:
                self.channel(channel_id)
                pools: Iterable[dict[str, Message]] = [self._messages[channel_id]]
            else:
                pools = self._messages.values()
            found = [m for pool in pools for m in pool.values() if include_replies or not m.is_reply]
        return sorted(found, key=lambda m: _ts_key(m.ts))

    def replies(self, channel_id: str, thread_ts: str) -> list[Message]:
        """The thread's parent, then its replies, oldest first."""
        parent = self.message(channel_id, thread_ts)
        with self._cond:
            replies = [m for m in self._messages[channel_id].values()
                       if m.is_reply and m.thread_ts == parent.ts]
        return [parent, *sorted(replies, key=lambda m: _ts_key(m.ts))]

    def message_to_api(self, message: Message, *, with_metadata: bool = True) -> JSON:
        """A message as the Web API shows it, with the thread summary Slack adds to a parent."""
        with self._cond:
            return self._message_to_api(message, with_metadata=with_metadata)

    def _message_to_api(self, message: Message, *, with_metadata: bool) -> JSON:
        body = message.to_api(self.team, with_metadata=with_metadata)
        if message.bot_id:
            body["bot_profile"] = {"id": self.app.bot_id, "app_id": self.app.app_id,
                                   "name": self.app.bot_name, "team_id": self.team.id, "deleted": False}
        if message.is_reply:
            parent = self._messages.get(message.channel, {}).get(message.thread_ts or "")
            if parent is not None and parent.user:
                body["parent_user_id"] = parent.user
            return body
        replies = [m for m in self._messages.get(message.channel, {}).values()
                   if m.is_reply and m.thread_ts == message.ts]
        if replies:
            replies.sort(key=lambda m: _ts_key(m.ts))
            reply_users = list(dict.fromkeys(m.user for m in replies if m.user))
            body.update({"thread_ts": message.ts, "reply_count": len(replies),
                         "reply_users_count": len(reply_users), "reply_users": reply_users,
                         "latest_reply": replies[-1].ts})
        return body

    # -- ephemeral messages -----------------------------------------------------------
    def post_ephemeral(self, channel_id: str, user_id: str, *, text: str = "", blocks: Iterable[JSON] = (),
                       thread_ts: str | None = None) -> Ephemeral:
        with self._mutation() as changes:
            self.channel(channel_id)
            self.user(user_id)
            ephemeral = Ephemeral(channel=channel_id, user=user_id, ts=self.next_ts(), text=text,
                                  blocks=tuple(blocks), thread_ts=thread_ts, bot_id=self.app.bot_id)
            self._ephemerals.append(ephemeral)
            changes.append(("ephemeral", f"{channel_id}/{ephemeral.ts}"))
        return ephemeral

    def ephemerals(self, user_id: str | None = None, channel_id: str | None = None) -> list[Ephemeral]:
        with self._cond:
            return [e for e in self._ephemerals
                    if user_id in (None, e.user) and channel_id in (None, e.channel)]

    def ephemeral(self, user_id: str, ts: str) -> Ephemeral:
        with self._cond:
            found = next((e for e in self._ephemerals if e.user == user_id and e.ts == ts), None)
        if found is None:
            raise ApiError("message_not_found")
        return found

    def replace_ephemeral(self, user_id: str, ts: str, *, text: str, blocks: Iterable[JSON]) -> Ephemeral:
        with self._mutation() as changes:
            current = self.ephemeral(user_id, ts)
            updated = replace(current, text=text, blocks=tuple(blocks))
            self._ephemerals[self._ephemerals.index(current)] = updated
            changes.append(("ephemeral", f"{current.channel}/{ts}"))
        return updated

    def delete_ephemeral(self, user_id: str, ts: str) -> None:
        with self._mutation() as changes:
            current = self.ephemeral(user_id, ts)
            self._ephemerals.remove(current)
            changes.append(("ephemeral_deleted", f"{current.channel}/{ts}"))

    # -- files ------------------------------------------------------------------------
    def reserve_file(self, name: str, length: int, *, alt_txt: str | None = None) -> File:
        with self._mutation() as changes:
            file = File(id=self.new_id("F"), name=name, length=length, created=int(self.clock()),
                        alt_txt=alt_txt)
            self._files[file.id] = file
            changes.append(("file", file.id))
        return file

    def store_upload(self, file_id: str, content: bytes) -> File:
        with self._mutation() as changes:
            file = self.file(file_id)
            file = replace(file, content=content)
            self._files[file_id] = file
            changes.append(("file", file_id))
        return file

    def complete_file(self, file_id: str, *, title: str | None, channels: Iterable[str]) -> File:
        with self._mutation() as changes:
            file = self.file(file_id)
            if file.content is None or file.completed:
                raise ApiError("file_not_found" if file.content is None else "file_uploads_already_completed")
            file = replace(file, title=title or file.name, channels=tuple(channels), completed=True)
            self._files[file_id] = file
            changes.append(("file", file_id))
        return file

    def file(self, file_id: str) -> File:
        with self._cond:
            if file_id not in self._files:
                raise ApiError("file_not_found")
            return self._files[file_id]

    def files(self) -> list[File]:
        with self._cond:
            return [f for f in self._files.values() if f.completed]


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)
