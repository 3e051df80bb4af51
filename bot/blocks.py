"""Block Kit building blocks that keep Slack's rules.

Text from agents, inputs and reasons is untrusted. It only ever goes into `plain_text`
objects, escaped (`&`, `<`, `>` become entities), with control and bidirectional-override
characters removed: it can never mention `@channel` or a person, form a link, apply
formatting or reorder what people read. Our own labels use mrkdwn.

Slack's limits are kept by truncating (never by failing): 3000 characters per text, 2000
per field, 150 per header, 75 per button label, 50 blocks per message.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_FIELD = 2000
MAX_HEADER = 150
MAX_BUTTON = 75
MAX_FALLBACK = 3000
MAX_VALUE = 2000
ELLIPSIS = "…"

# Explicit-direction controls: U+202A..U+202E, U+2066..U+2069, and the marks.
_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}


def _shown(ch: str) -> bool:
    if ch in "\n\t":
        return True
    if ch in _BIDI:
        return False
    category = unicodedata.category(ch)
    if category in ("Cc", "Cs", "Cn"):  # controls, lone surrogates (bad UTF-8), unassigned
        return False
    if category == "Cf":  # invisible formatting; keep the joiner emoji sequences need
        return ch == "\u200d"
    return True


# ASCII's only characters `_shown` removes: its controls other than newline and tab.
_ASCII_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: object) -> str:
    """Untrusted text made safe to show: no control, invisible or direction-override
    characters."""
    value = str(text) if text is not None else ""
    if value.isascii():  # most text: one pass in C instead of a category lookup per character
        return _ASCII_HIDDEN.sub("", value)
    return "".join(ch for ch in value if _shown(ch))


# An absolute path (`/srv/baton/flows/pay.yaml`, two parts at least): not a URL's path
# (`https://x/y`), not a fraction (`1/2`), not a command (`/baton`).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])(?:/[\w.@+-]+){2,}/?")


def hide_paths(text: str) -> str:
    """`text` with each absolute file path shortened to its last part (`pay.yaml`): error
    messages name the file to fix without telling a workspace member (or anyone who can
    reach an HTTP endpoint) how the server's disk is laid out."""
    return _ABSOLUTE_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "/", text)


def esc(text: object) -> str:
    """Escape Slack's control characters (after cleaning)."""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, more: str = "") -> str:
    """Shorten to `limit` characters, ending with an ellipsis and an optional pointer."""
    if len(text) <= limit:
        return text
    tail = f"{ELLIPSIS} {more}".rstrip() if more else ELLIPSIS
    cut = text[: max(0, limit - len(tail))]
    # do not cut an entity in half (&amp; -> &am)
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp < 6:
        cut = cut[:amp]
    return cut + tail


def plain(text: object, limit: int = MAX_TEXT, more: str = "") -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(esc(text), limit, more) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = MAX_TEXT) -> dict[str, Any]:
    """Our own formatted text. Anything untrusted inside must already be `esc`aped."""
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def header(text: object) -> Block:
    return {"type": "header", "text": plain(text, MAX_HEADER)}


def section(text: dict[str, Any] | None = None, fields: list[dict[str, Any]] | None = None,
            block_id: str | None = None, accessory: dict[str, Any] | None = None) -> Block:
    block: Block = {"type": "section"}
    if text is not None:
        block["text"] = text
    if fields:
        block["fields"] = fields[:10]
    if block_id:
        block["block_id"] = block_id
    if accessory:
        block["accessory"] = accessory
    return block


def context(*elements: dict[str, Any]) -> Block:
    return {"type": "context", "elements": list(elements)[:10]}


def divider() -> Block:
    return {"type": "divider"}


def button(label: str, action_id: str, value: dict[str, Any] | str, *, style: str | None = None,
           confirm: dict[str, Any] | None = None) -> dict[str, Any]:
    payload = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    element: dict[str, Any] = {"type": "button", "text": plain(label, MAX_BUTTON),
                               "action_id": action_id, "value": payload[:MAX_VALUE]}
    if style in ("primary", "danger"):
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, yes: str, no: str = "Cancel",
                   danger: bool = True) -> dict[str, Any]:
    dialog = {"title": plain(title, 100), "text": plain(text, 300), "confirm": plain(yes, 30),
              "deny": plain(no, 30)}
    if danger:
        dialog["style"] = "danger"
    return dialog


def actions(elements: list[dict[str, Any]], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": elements[:25]}
    if block_id:
        block["block_id"] = block_id
    return block


def action_rows(elements: list[dict[str, Any]], block_id: str) -> list[Block]:
    """Every element, 25 to an actions block (Slack's most in one): a choice past the 25th
    must still be one people can make. The blocks' ids are `block_id`, then `block_id-2`..."""
    return [actions(elements[at:at + 25], block_id if at == 0 else f"{block_id}-{at // 25 + 1}")
            for at in range(0, len(elements), 25)]


def static_select(placeholder: str, action_id: str, options: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "static_select", "action_id": action_id,
            "placeholder": plain(placeholder, 150),
            "options": [{"text": plain(label, 75), "value": value[:150]}
                        for label, value in options[:100]]}


def fit(blocks: list[Block], more: str) -> list[Block]:
    """At most 50 blocks; the last one says where to see the rest."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], context(plain(f"{len(blocks) - MAX_BLOCKS + 1} more "
                                                     f"items not shown. {more}"))]


def fallback(text: str) -> str:
    """The notification text (top-level `text`); `text` must already be escaped."""
    return clip(text, MAX_FALLBACK)
