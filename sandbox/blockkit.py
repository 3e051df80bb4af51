"""Block Kit validation: the limits Slack enforces that a bot can trip over.

Not a full schema: the rules here are the ones Baton's renderers could break (too many
blocks, over-long text, duplicate ids, missing labels). Each problem is reported as Slack
words it: a message and a JSON pointer, e.g.
`must be less than 3001 characters [json-pointer:/blocks/0/text/text]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

Surface = Literal["message", "modal", "home"]

MAX_BLOCKS = {"message": 50, "modal": 100, "home": 100}
BLOCK_TYPES = {"section", "actions", "context", "divider", "header", "image", "input", "rich_text", "file",
               "video", "markdown", "table", "context_actions"}
ELEMENT_TYPES = {"button", "static_select", "external_select", "users_select", "conversations_select",
                 "channels_select", "multi_static_select", "multi_external_select", "multi_users_select",
                 "multi_conversations_select", "multi_channels_select", "overflow", "datepicker",
                 "timepicker", "datetimepicker", "checkboxes", "radio_buttons", "plain_text_input",
                 "email_text_input", "url_text_input", "number_input", "image", "rich_text_input",
                 "workflow_button", "file_input"}


def _too_long(limit: int) -> str:
    return f"must be less than {limit + 1} characters"


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def text(self, value: Any, pointer: str, *, limit: int, plain_only: bool = False) -> None:
        if not isinstance(value, dict) or value.get("type") not in ("plain_text", "mrkdwn"):
            self.fail("must provide an object with a type of plain_text or mrkdwn", pointer)
            return
        if plain_only and value["type"] != "plain_text":
            self.fail("must be a plain_text text object", pointer)
        text = value.get("text")
        if not isinstance(text, str) or not text:
            self.fail("must be more than 0 characters", f"{pointer}/text")
        elif len(text) > limit:
            self.fail(_too_long(limit), f"{pointer}/text")

    def element(self, element: Any, pointer: str, action_ids: set[str]) -> None:
        if not isinstance(element, dict) or element.get("type") not in ELEMENT_TYPES:
            self.fail("failed to match all allowed schemas", pointer)
            return
        action_id = element.get("action_id")
        if action_id is not None:
            if len(str(action_id)) > 255:
                self.fail(_too_long(255), f"{pointer}/action_id")
            if action_id in action_ids:
                self.fail(f"duplicate action_id {action_id!r}", f"{pointer}/action_id")
            action_ids.add(action_id)
        kind = element["type"]
        if kind == "button":
            self.text(element.get("text"), f"{pointer}/text", limit=75, plain_only=True)
            if len(str(element.get("value", ""))) > 2000:
                self.fail(_too_long(2000), f"{pointer}/value")
            if element.get("style") not in (None, "primary", "danger"):
                self.fail("must be one of primary, danger", f"{pointer}/style")
        elif kind in ("static_select", "multi_static_select", "overflow", "radio_buttons", "checkboxes"):
            options = element.get("options")
            groups = element.get("option_groups")
            if not options and not groups:
                self.fail("must provide options or option_groups", pointer)
            if options is not None:
                limit = 5 if kind == "overflow" else 100
                if not isinstance(options, list) or len(options) > limit:
                    self.fail(f"no more than {limit} items allowed", f"{pointer}/options")
                else:
                    for i, option in enumerate(options):
                        self.option(option, f"{pointer}/options/{i}")

    def option(self, option: Any, pointer: str) -> None:
        if not isinstance(option, dict):
            self.fail("must be an object", pointer)
            return
        self.text(option.get("text"), f"{pointer}/text", limit=75)
        if len(str(option.get("value", ""))) > 150:
            self.fail(_too_long(150), f"{pointer}/value")

    def block(self, block: Any, pointer: str, surface: Surface) -> None:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            self.fail("failed to match all allowed schemas", pointer)
            return
        kind = block["type"]
        action_ids: set[str] = set()
        if kind == "section":
            if "text" not in block and "fields" not in block:
                self.fail("must provide text or fields", pointer)
            if "text" in block:
                self.text(block["text"], f"{pointer}/text", limit=3000)
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > 10:
                    self.fail("no more than 10 items allowed", f"{pointer}/fields")
                else:
                    for i, item in enumerate(fields):
                        self.text(item, f"{pointer}/fields/{i}", limit=2000)
            if "accessory" in block:
                self.element(block["accessory"], f"{pointer}/accessory", action_ids)
        elif kind == "header":
            self.text(block.get("text"), f"{pointer}/text", limit=150, plain_only=True)
        elif kind == "actions":
            self._elements(block, pointer, limit=25, action_ids=action_ids)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                self.fail("must provide between 1 and 10 elements", f"{pointer}/elements")
            else:
                for i, item in enumerate(elements):
                    if isinstance(item, dict) and item.get("type") in ("plain_text", "mrkdwn"):
                        self.text(item, f"{pointer}/elements/{i}", limit=3000)
        elif kind == "input":
            self.text(block.get("label"), f"{pointer}/label", limit=2000, plain_only=True)
            if "element" not in block:
                self.fail("must provide an element", f"{pointer}/element")
            else:
                self.element(block["element"], f"{pointer}/element", action_ids)
            if "hint" in block:
                self.text(block["hint"], f"{pointer}/hint", limit=2000, plain_only=True)
        elif kind == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text or len(text) > 12000:
                self.fail("must be between 1 and 12000 characters", f"{pointer}/text")

    def _elements(self, block: dict[str, Any], pointer: str, *, limit: int, action_ids: set[str]) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= limit:
            self.fail(f"must provide between 1 and {limit} elements", f"{pointer}/elements")
            return
        for i, element in enumerate(elements):
            self.element(element, f"{pointer}/elements/{i}", action_ids)


def block_errors(blocks: Any, *, surface: Surface = "message", pointer: str = "/blocks") -> list[str]:
    """What Slack would reject in `blocks` (a decoded `blocks` argument); empty when valid."""
    checker = _Checker()
    if not isinstance(blocks, list):
        checker.fail("must be an array", pointer)
        return checker.errors
    limit = MAX_BLOCKS[surface]
    if len(blocks) > limit:
        checker.fail(f"no more than {limit} items allowed", pointer)
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        checker.block(block, f"{pointer}/{i}", surface)
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if block_id is not None:
            if len(str(block_id)) > 255:
                checker.fail(_too_long(255), f"{pointer}/{i}/block_id")
            if block_id in block_ids:
                checker.fail(f"duplicate block_id {block_id!r}", f"{pointer}/{i}/block_id")
            block_ids.add(block_id)
    return checker.errors


def view_errors(view: Any) -> list[str]:
    """What Slack would reject in a `view` argument of views.open/push/update/publish."""
    checker = _Checker()
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        checker.fail("must be a view of type modal or home", "/view/type")
        return checker.errors
    surface: Surface = view["type"]
    if surface == "modal":
        checker.text(view.get("title"), "/view/title", limit=24, plain_only=True)
        for name in ("submit", "close"):
            if view.get(name) is not None:
                checker.text(view[name], f"/view/{name}", limit=24, plain_only=True)
        blocks = view.get("blocks")
        if isinstance(blocks, list) and view.get("submit") is None and any(
                isinstance(b, dict) and b.get("type") == "input" for b in blocks):
            checker.fail("must provide submit when the view has input blocks", "/view/submit")
    for name, limit in (("callback_id", 255), ("external_id", 255), ("private_metadata", 3000)):
        if len(str(view.get(name) or "")) > limit:
            checker.fail(_too_long(limit), f"/view/{name}")
    checker.errors.extend(block_errors(view.get("blocks", []), surface=surface, pointer="/view/blocks"))
    return checker.errors


def find_element(blocks: Sequence[Any], action_id: str, *, block_id: str | None = None,
                 value: str | None = None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The (block, element) carrying `action_id`, as a click on it would find it."""
    for block in blocks:
        if not isinstance(block, dict) or (block_id is not None and block.get("block_id") != block_id):
            continue
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if not isinstance(element, dict) or element.get("action_id") != action_id:
                continue
            if value is not None and element.get("type") == "button" and element.get("value") != value:
                continue
            return block, element
    return None


def action_ids(blocks: Sequence[Any]) -> list[str]:
    """Every action_id in `blocks`, to say what could have been meant when a lookup fails."""
    found: list[str] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        elements += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        found += [e["action_id"] for e in elements if isinstance(e, dict) and "action_id" in e]
    return found
