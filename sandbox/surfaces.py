"""Views, trigger ids and response URLs: the state behind Slack's interactive surfaces.

Mixed into `Workspace`, whose lock, change tracking, ids and users it uses.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sandbox.errors import ApiError
from sandbox.records import JSON, ResponseUrl, Team, Trigger, User, View

TRIGGER_TTL = 3.0
RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_USES = 5
MODAL_STACK_LIMIT = 3


class Surfaces:
    if TYPE_CHECKING:
        team: Team
        clock: Callable[[], float]
        trigger_ttl: float
        _cond: threading.Condition
        _counter: Iterator[int]

        def _mutation(self) -> AbstractContextManager[list[tuple[str, str]]]: ...
        def new_id(self, prefix: str) -> str: ...
        def user(self, user_id: str) -> User: ...

    def _init_surfaces(self) -> None:
        self._views: dict[str, View] = {}
        self._stacks: dict[str, list[str]] = {}
        self._homes: dict[str, str] = {}
        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}

    # -- views ------------------------------------------------------------------------
    def view(self, view_id: str) -> View:
        with self._cond:
            if view_id not in self._views:
                raise ApiError("not_found")
            return self._views[view_id]

    def view_by_external_id(self, external_id: str) -> View:
        with self._cond:
            found = next((v for v in self._views.values() if v.external_id == external_id), None)
        if found is None:
            raise ApiError("not_found")
        return found

    def modal_stack(self, user_id: str) -> list[View]:
        """The user's open modals, bottom first; the last one is the one they see."""
        with self._cond:
            return [self._views[v] for v in self._stacks.get(user_id, [])]

    def home(self, user_id: str) -> View | None:
        with self._cond:
            view_id = self._homes.get(user_id)
            return self._views[view_id] if view_id else None

    def open_modal(self, user_id: str, fields: Mapping[str, Any], *, push: bool = False) -> View:
        with self._mutation() as changes:
            self.user(user_id)
            stack = self._stacks.setdefault(user_id, [])
            if push and not stack:
                raise ApiError("not_found")
            if push and len(stack) >= MODAL_STACK_LIMIT:
                raise ApiError("push_limit_reached")
            self._check_external_id(fields.get("external_id", ""))
            previous = stack[-1] if push else None
            root = self._views[stack[0]].root_view_id if push else None
            view = View(id=self.new_id("V"), user=user_id, type="modal", hash=self._new_hash(),
                        previous_view_id=previous, **_view_fields(fields))
            view = replace(view, root_view_id=root or view.id)
            if not push:
                stack.clear()
            stack.append(view.id)
            self._views[view.id] = view
            changes.append(("view", view.id))
        return view

    def update_view(self, view_id: str, fields: Mapping[str, Any], *, hash: str | None = None) -> View:
        with self._mutation() as changes:
            current = self.view(view_id)
            if hash and hash != current.hash:
                raise ApiError("hash_conflict")
            if fields.get("external_id") not in (None, "", current.external_id):
                self._check_external_id(fields["external_id"])
            updated = replace(current, hash=self._new_hash(), errors=None, **_view_fields(fields))
            self._views[view_id] = updated
            changes.append(("view", view_id))
        return updated

    def publish_home(self, user_id: str, fields: Mapping[str, Any], *, hash: str | None = None) -> View:
        with self._mutation() as changes:
            self.user(user_id)
            current = self.home(user_id)
            if current is not None and hash and hash != current.hash:
                raise ApiError("hash_conflict")
            if current is None:
                view = View(id=self.new_id("V"), user=user_id, type="home", hash=self._new_hash(),
                            **_view_fields(fields))
            else:
                view = replace(current, hash=self._new_hash(), **_view_fields(fields))
            self._views[view.id] = view
            self._homes[user_id] = view.id
            changes.append(("home", user_id))
        return view

    def set_view_state(self, view_id: str, state: JSON, *, errors: JSON | None = None) -> View:
        with self._mutation() as changes:
            updated = replace(self.view(view_id), state=state, errors=errors)
            self._views[view_id] = updated
            changes.append(("view", view_id))
        return updated

    def close_modal(self, user_id: str, view_id: str | None = None, *, all: bool = False) -> list[View]:
        """Close the top modal (or `view_id` and those above it, or all); return what closed."""
        with self._mutation() as changes:
            stack = self._stacks.get(user_id, [])
            if not stack:
                return []
            cut = 0 if all else (stack.index(view_id) if view_id in stack else len(stack) - 1)
            closed = [self._views[v] for v in stack[cut:]]
            del stack[cut:]
            changes.extend(("view_closed", v.id) for v in closed)
        return closed

    def _check_external_id(self, external_id: str) -> None:
        if external_id and any(v.external_id == external_id for v in self._views.values()):
            raise ApiError("duplicate_external_id")

    def _new_hash(self) -> str:
        return f"{int(self.clock())}.{secrets.token_hex(4)}"

    # -- triggers and response URLs ----------------------------------------------------
    def issue_trigger(self, user_id: str) -> str:
        with self._mutation():
            trigger = Trigger(id=f"{int(self.clock())}.{next(self._counter)}.{secrets.token_hex(16)}",
                              user=user_id, issued_at=self.clock())
            self._triggers[trigger.id] = trigger
        return trigger.id

    def exchange_trigger(self, trigger_id: str) -> Trigger:
        """Use a trigger_id once, within `trigger_ttl` (Slack's 3 seconds) of the
        interaction, as views.open does."""
        with self._mutation():
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                raise ApiError("invalid_trigger_id")
            if trigger.used:
                raise ApiError("exchanged_trigger_id")
            if self.clock() - trigger.issued_at > self.trigger_ttl:
                raise ApiError("expired_trigger_id")
            self._triggers[trigger_id] = replace(trigger, used=True)
        return trigger

    def issue_response_url(self, user_id: str, channel_id: str | None, *, message_ts: str | None = None,
                           is_ephemeral: bool = False) -> str:
        with self._mutation():
            token = f"{self.team.id}/{next(self._counter)}/{secrets.token_urlsafe(16)}"
            self._response_urls[token] = ResponseUrl(token=token, user=user_id, channel=channel_id,
                                                     issued_at=self.clock(), message_ts=message_ts,
                                                     is_ephemeral=is_ephemeral)
        return token

    def use_response_url(self, token: str) -> ResponseUrl:
        with self._mutation():
            found = self._response_urls.get(token)
            if found is None or self.clock() - found.issued_at > RESPONSE_URL_TTL:
                raise ApiError("expired_url")
            if found.uses >= RESPONSE_URL_USES:
                raise ApiError("used_url")
            self._response_urls[token] = replace(found, uses=found.uses + 1)
        return found



_VIEW_FIELDS = ("blocks", "title", "submit", "close", "callback_id", "private_metadata", "external_id",
                "notify_on_close", "clear_on_close")


def _view_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a `view` argument a View record keeps, normalised (views.update replaces them all)."""
    values: dict[str, Any] = {name: fields.get(name) for name in _VIEW_FIELDS}
    values["blocks"] = tuple(values["blocks"] or ())
    for name in ("callback_id", "private_metadata", "external_id"):
        values[name] = values[name] or ""
    for name in ("notify_on_close", "clear_on_close"):
        values[name] = bool(values[name])
    return values
