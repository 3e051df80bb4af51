"""Keeping a sandbox workspace across restarts of `baton dev`.

Slack keeps its channels, messages and Home tabs while a bot restarts; so must the
sandbox, or a run waiting in the database would point at a card and a thread the sandbox
no longer has. What Slack does not keep either (ephemeral messages, open modals, trigger
ids, response URLs) is not saved.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.records import JSON, Channel, Message, User, View

FORMAT = 1
_MESSAGE_FIELDS = {f.name for f in fields(Message)} - {"history"}
_VIEW_FIELDS = {f.name for f in fields(View)}


class Snapshots:
    """Mixed into `Workspace`: its lasting state as JSON, and back."""

    if TYPE_CHECKING:
        _cond: threading.Condition
        _counter: Iterator[int]
        _last_ts_us: int
        _users: dict[str, User]
        _channels: dict[str, Channel]
        _dms: dict[str, str]
        _messages: dict[str, dict[str, Message]]
        _views: dict[str, View]
        _homes: dict[str, str]

        def _mutation(self) -> AbstractContextManager[list[tuple[str, str]]]: ...
        def find_channel(self, name_or_id: str) -> Channel | None: ...

    def snapshot(self) -> JSON:
        with self._cond:
            return {
                "format": FORMAT,
                "counter": next(self._counter),  # the ids made so far; one is skipped, harmlessly
                "last_ts_us": self._last_ts_us,
                "channels": [asdict(c) for c in self._channels.values()],
                "messages": [{k: v for k, v in asdict(m).items() if k in _MESSAGE_FIELDS}
                             for pool in self._messages.values() for m in pool.values()],
                "homes": [asdict(self._views[v]) for v in self._homes.values()],
            }

    def restore(self, data: JSON) -> int:
        """Bring back what `snapshot` saved, where it still fits this workspace (its people
        and channels come from the org file first); returns how many messages came back."""
        if data.get("format") != FORMAT:
            return 0
        restored = 0
        with self._mutation() as changes:
            self._counter = itertools.count(max(int(data.get("counter", 1)), 1))
            self._last_ts_us = max(self._last_ts_us, int(data.get("last_ts_us", 0)))
            for saved in data.get("channels", []):
                channel = Channel(**{**saved, "members": tuple(saved.get("members", ()))})
                if not self._fits(channel):
                    continue
                self._channels[channel.id] = channel
                self._messages.setdefault(channel.id, {})
                if channel.kind == "im" and channel.user:
                    self._dms[channel.user] = channel.id
            for saved in data.get("messages", []):
                pool = self._messages.get(saved.get("channel", ""))
                if pool is None:
                    continue
                message = Message(**{k: v for k, v in saved.items() if k in _MESSAGE_FIELDS},
                                  history=())
                pool[message.ts] = _tupled(message)
                restored += 1
            for saved in data.get("homes", []):
                if saved.get("user") not in self._users:
                    continue
                view = View(**{k: v for k, v in saved.items() if k in _VIEW_FIELDS})
                view = replace(view, blocks=tuple(view.blocks))
                self._views[view.id] = view
                self._homes[view.user] = view.id
            changes.append(("restored", str(restored)))
        return restored

    def _fits(self, channel: Channel) -> bool:
        if channel.id in self._channels:
            return False
        if channel.kind == "im":
            return channel.user in self._users and channel.user not in self._dms
        if channel.kind == "mpim":
            return all(member in self._users for member in channel.members)
        return self.find_channel(channel.name) is None


def _tupled(message: Message) -> Message:
    return replace(message, blocks=tuple(message.blocks), files=tuple(message.files))


class SnapshotFile:
    """A workspace saved to `path` while it changes (at most every `interval` seconds) and
    when it stops; written whole to a temporary file first, so a crash never leaves half."""

    def __init__(self, path: Path, workspace: Any, *, interval: float = 1.0) -> None:
        self.path = path
        self.workspace = workspace
        self.interval = interval
        self._saved_version = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> int:
        """Restore the workspace from the file, if there is one; how many messages came back."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except ValueError:
            return 0  # unreadable: start afresh, it is overwritten on the next save
        restored = int(self.workspace.restore(data))
        self._saved_version = self.workspace.version
        return restored

    def save(self) -> None:
        version = self.workspace.version
        if version == self._saved_version:
            return
        data = self.workspace.snapshot()
        scratch = self.path.with_name(f".{self.path.name}.tmp")
        scratch.write_text(json.dumps(data, ensure_ascii=False, default=_jsonable), encoding="utf-8")
        os.replace(scratch, self.path)
        self._saved_version = version

    def start(self) -> SnapshotFile:
        def keep() -> None:
            while not self._stop.wait(self.interval):
                with contextlib.suppress(OSError):
                    self.save()

        self._thread = threading.Thread(target=keep, name="sandbox-snapshot", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.save()


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, bytes | bytearray) else str(value)
