"""What every Web API method handler shares: its arguments, its context, the registry."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sandbox.blockkit import Surface, block_errors
from sandbox.errors import ApiError
from sandbox.records import JSON
from sandbox.workspace import Workspace

MAX_TEXT = 40_000
T = TypeVar("T")


class Args:
    """A method's arguments as sent: strings from a form, or JSON values from a JSON body."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def __contains__(self, key: str) -> bool:
        return self.values.get(key) not in (None, "")

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.values.get(key)
        return default if value is None else str(value)

    def require(self, key: str, error: str) -> str:
        value = self.text(key)
        if not value:
            raise ApiError(error)
        return value

    def flag(self, key: str) -> bool:
        return self.values.get(key) in (True, 1, "1", "true", "True")

    def int(self, key: str, default: int) -> int:
        value = self.values.get(key)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid("invalid_arguments", [f"{key} must be an integer"]) from None

    def json(self, key: str, error: str) -> Any:
        """A structured argument: a JSON string in a form body, or already decoded in a JSON body."""
        value = self.values.get(key)
        if not isinstance(value, str):
            return value
        if value == "":
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise ApiError(error) from None


def _messages(problems: Sequence[str]) -> JSON:
    return {"messages": [f"[ERROR] {p}" for p in problems]}


def invalid(error: str, problems: Sequence[str]) -> ApiError:
    """An error carrying Slack's list of problems (as `invalid_blocks` and `invalid_arguments` do)."""
    extra: dict[str, Any] = {"errors": list(problems)} if error == "invalid_blocks" else {}
    return ApiError(error, **extra, response_metadata=_messages(problems))


@dataclass(frozen=True)
class ApiRequest:
    workspace: Workspace
    args: Args
    token_type: Literal["bot", "app"]
    # Where the emulator is served, for the URLs it hands out (upload URLs, socket URLs).
    base_url: str


Handler = Callable[[ApiRequest], JSON]
METHODS: dict[str, Handler] = {}


def method(name: str, *, token_type: Literal["bot", "app"] = "bot") -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        METHODS[name] = handler
        TOKEN_TYPES[name] = token_type
        return handler

    return register


TOKEN_TYPES: dict[str, Literal["bot", "app"]] = {}


def message_content(args: Args, *, required: bool = True,
                    surface: Surface = "message") -> tuple[str | None, list[JSON] | None]:
    """`text` and `blocks` as Slack validates them for a message; None where not given."""
    text = args.text("text")
    blocks = args.json("blocks", "invalid_blocks_format")
    if blocks is not None:
        problems = block_errors(blocks, surface=surface)
        if problems:
            raise invalid("invalid_blocks", problems)
    if text is not None and len(text) > MAX_TEXT:
        raise ApiError("msg_too_long")
    if required and not text and not blocks and "attachments" not in args:
        raise ApiError("no_text")
    return text, blocks


def paginate(items: Sequence[T], args: Args, *, default_limit: int = 100) -> tuple[list[T], str]:
    """One page of `items` and the cursor of the next ("" at the end), as Slack's cursors work."""
    limit = max(1, min(args.int("limit", default_limit), 1000))
    cursor = args.text("cursor") or ""
    start = 0
    if cursor:
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
        except ValueError:
            raise ApiError("invalid_cursor") from None
    page = list(items[start:start + limit])
    more = start + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    return page, next_cursor
