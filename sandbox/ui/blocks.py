"""Block Kit as the sandbox page draws it: pure functions from blocks to escaped HTML.

Interactive elements carry what a click needs in `data-` attributes (`data-action`, the
block's `data-block`, a button's `data-value`); the page's script turns a click into the
same `block_actions` payload Slack would send. A block or element the page cannot draw
is shown as its JSON, never dropped, so nothing the bot sends goes unseen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.ui.mrkdwn import Names, esc, mrkdwn_html, plain_html

JSON = dict[str, Any]

SELECTS = {"static_select", "external_select", "overflow", "users_select", "conversations_select",
           "channels_select", "multi_static_select", "multi_external_select", "multi_users_select",
           "multi_conversations_select", "multi_channels_select"}
TEXT_INPUTS = {"plain_text_input": "text", "email_text_input": "email", "url_text_input": "url",
               "number_input": "number"}


@dataclass(frozen=True)
class Surface:
    """What the blocks are drawn for: names to resolve, people and places to pick from, and
    for a modal its state (what was typed) and the errors the app returned."""

    names: Names = field(default_factory=Names.none)
    users: Sequence[tuple[str, str]] = ()
    channels: Sequence[tuple[str, str]] = ()
    state: Mapping[str, Any] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)


def text_html(obj: Any, surface: Surface) -> str:
    """A text object (plain_text or mrkdwn); anything else as JSON."""
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return unknown_html(obj, "not a text object")
    if obj.get("type") == "mrkdwn":
        return mrkdwn_html(obj["text"], surface.names)
    if obj.get("type") == "plain_text":
        return plain_html(obj["text"], emoji=obj.get("emoji", True) is not False)
    return unknown_html(obj, f"text type {obj.get('type')!r}")


def unknown_html(obj: Any, why: str) -> str:
    shown = json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False)
    return (f'<div class="unknown"><div class="why">{esc(why)}: shown as JSON</div>'
            f"<pre>{esc(shown)}</pre></div>")


def _attr(name: str, value: Any) -> str:
    return "" if value is None else f' {name}="{esc(str(value))}"'


def blocks_html(blocks: Iterable[Any], surface: Surface | None = None) -> str:
    surface = surface or Surface()
    return "".join(block_html(block, surface) for block in blocks)


def block_html(block: Any, surface: Surface) -> str:
    if not isinstance(block, dict):
        return unknown_html(block, "not a block")
    kind = block.get("type")
    draw = _BLOCKS.get(str(kind))
    inner = draw(block, surface) if draw else None
    if inner is None:
        return unknown_html(block, f"block type {kind!r} is not drawn by the sandbox")
    return (f'<div class="bk bk-{esc(str(kind))}"{_attr("data-block", block.get("block_id"))}>'
            f"{inner}</div>")


def _header(block: JSON, surface: Surface) -> str | None:
    return f"<h3>{text_html(block.get('text'), surface)}</h3>"


def _divider(block: JSON, surface: Surface) -> str | None:
    return "<hr>"


def _section(block: JSON, surface: Surface) -> str | None:
    parts = []
    if "text" in block:
        parts.append(f'<div class="text">{text_html(block["text"], surface)}</div>')
    fields = block.get("fields")
    if isinstance(fields, list) and fields:
        cells = "".join(f'<div class="field">{text_html(f, surface)}</div>' for f in fields)
        parts.append(f'<div class="fields">{cells}</div>')
    main = f'<div class="main">{"".join(parts)}</div>'
    accessory = block.get("accessory")
    if accessory is not None:
        main += f'<div class="accessory">{element_html(accessory, surface)}</div>'
    return main


def _context(block: JSON, surface: Surface) -> str | None:
    items = []
    for element in block.get("elements") or []:
        if isinstance(element, dict) and element.get("type") == "image":
            items.append(_image_element(element))
        else:
            items.append(f"<span>{text_html(element, surface)}</span>")
    return "".join(items)


def _actions(block: JSON, surface: Surface) -> str | None:
    return "".join(element_html(e, surface) for e in block.get("elements") or [])


def _image(block: JSON, surface: Surface) -> str | None:
    title = block.get("title")
    caption = f"<figcaption>{text_html(title, surface)}</figcaption>" if title else ""
    return f"<figure>{_image_element(block)}{caption}</figure>"


def _input(block: JSON, surface: Surface) -> str | None:
    element = block.get("element")
    if not isinstance(element, dict):
        return None
    block_id = str(block.get("block_id") or "")
    optional = bool(block.get("optional"))
    label = text_html(block.get("label"), surface)
    tail = ' <span class="optional">(optional)</span>' if optional else ""
    value = _state_value(surface.state, block_id, element.get("action_id"))
    control = element_html(element, surface, in_input=True, value=value)
    hint = block.get("hint")
    hint_html = f'<div class="hint">{text_html(hint, surface)}</div>' if hint else ""
    error = surface.errors.get(block_id)
    error_html = f'<div class="error from-app" role="alert">{esc(str(error))}</div>' if error else ""
    return (f'<div class="bk-field" data-input="{esc(block_id)}"{" data-optional" if optional else ""}>'
            f"<label>{label}{tail}</label>{control}{hint_html}"
            f'<div class="error local" hidden></div>{error_html}</div>')


_BLOCKS = {"header": _header, "divider": _divider, "section": _section, "context": _context,
           "actions": _actions, "image": _image, "input": _input}


def _state_value(state: Mapping[str, Any], block_id: str, action_id: Any) -> Any:
    """What a modal's state holds for one input, in the shape its element's selection uses."""
    values = (state.get("values") or {}).get(block_id) or {}
    entry = values.get(str(action_id)) if isinstance(values, dict) else None
    if not isinstance(entry, dict):
        return None
    for key, item in entry.items():
        if key == "type":
            continue
        if key == "selected_option":
            return item.get("value") if isinstance(item, dict) else None
        if key == "selected_options":
            return [o.get("value") for o in item or [] if isinstance(o, dict)]
        return item
    return None


def _image_element(element: JSON) -> str:
    # The sandbox loads nothing from the internet: an image is its alt text.
    alt = str(element.get("alt_text") or "image")
    url = element.get("image_url")
    return f'<span class="image"{_attr("title", url)}>\U0001f5bc {esc(alt)}</span>'


def _initial(element: JSON, value: Any) -> Any:
    if value is not None:
        return value
    kind = element.get("type", "")
    if kind in ("static_select", "overflow", "radio_buttons", "external_select"):
        option = element.get("initial_option")
        return option.get("value") if isinstance(option, dict) else None
    if kind in ("multi_static_select", "checkboxes", "multi_external_select"):
        return [o.get("value") for o in element.get("initial_options") or [] if isinstance(o, dict)]
    for key in ("initial_value", "initial_user", "initial_conversation", "initial_channel", "initial_date",
                "initial_time", "initial_users", "initial_conversations", "initial_channels"):
        if key in element:
            return element[key]
    return None


def element_html(element: Any, surface: Surface, *, in_input: bool = False, value: Any = None) -> str:
    if not isinstance(element, dict):
        return unknown_html(element, "not an element")
    kind = str(element.get("type"))
    data = f'{_attr("data-action", element.get("action_id"))} data-kind="{esc(kind)}"'
    chosen = _initial(element, value)
    if kind == "button":
        return _button(element, surface, data)
    if kind in TEXT_INPUTS and in_input:
        return _text_input(element, surface, data, kind, chosen)
    if kind in SELECTS:
        return _select(element, surface, data, kind, chosen)
    if kind in ("radio_buttons", "checkboxes"):
        return _choices(element, surface, data, kind, chosen)
    if kind in ("datepicker", "timepicker"):
        shown = "date" if kind == "datepicker" else "time"
        return f'<input class="bk-control" type="{shown}"{data}{_attr("value", chosen)}>'
    if kind == "image":
        return _image_element(element)
    return unknown_html(element, f"element type {kind!r} is not drawn by the sandbox")


def _button(element: JSON, surface: Surface, data: str) -> str:
    style = element.get("style")
    classes = "bk-button" + (f" {style}" if style in ("primary", "danger") else "")
    label = text_html(element.get("text"), surface)
    url = element.get("url")
    button = (f'<button type="button" class="{classes}"{data}{_attr("data-value", element.get("value"))}'
              f'{_attr("data-url", url)}>{label}</button>')
    confirm = element.get("confirm")
    if isinstance(confirm, dict):
        button += f'<template class="confirm">{confirm_html(confirm, surface)}</template>'
    return f'<span class="bk-element">{button}</span>'


def confirm_html(confirm: JSON, surface: Surface) -> str:
    """The dialog Slack shows before a button with `confirm` sends anything."""
    yes = text_html(confirm.get("confirm") or {"type": "plain_text", "text": "Yes"}, surface)
    no = text_html(confirm.get("deny") or {"type": "plain_text", "text": "Cancel"}, surface)
    style = "danger" if confirm.get("style") == "danger" else "primary"
    return (f'<div class="dialog confirm-dialog" role="dialog">'
            f"<h2>{text_html(confirm.get('title'), surface)}</h2>"
            f'<div class="text">{text_html(confirm.get("text"), surface)}</div>'
            f'<footer><button type="button" class="bk-button" data-deny>{no}</button>'
            f'<button type="button" class="bk-button {style}" data-confirm>{yes}</button></footer></div>')


def _text_input(element: JSON, surface: Surface, data: str, kind: str, chosen: Any) -> str:
    placeholder = element.get("placeholder")
    hint = _attr("placeholder", placeholder.get("text")) if isinstance(placeholder, dict) else ""
    limits = _attr("maxlength", element.get("max_length")) + _attr("minlength", element.get("min_length"))
    if kind == "number_input":
        step = "any" if element.get("is_decimal_allowed") else "1"
        limits = (f' step="{step}"' + _attr("min", element.get("min_value"))
                  + _attr("max", element.get("max_value")))
    value = "" if chosen is None else str(chosen)
    if element.get("multiline"):
        return f'<textarea class="bk-control" rows="4"{data}{hint}{limits}>{esc(value)}</textarea>'
    return f'<input class="bk-control" type="{TEXT_INPUTS[kind]}"{data}{hint}{limits} value="{esc(value)}">'


def _options(element: JSON, surface: Surface, kind: str) -> list[tuple[str | None, list[tuple[str, str]]]]:
    """(group label, [(value, label html)]) as the select lists them."""
    if kind in ("users_select", "multi_users_select"):
        return [(None, [(u, esc(name)) for u, name in surface.users])]
    if kind.endswith(("conversations_select", "channels_select")):
        return [(None, [(c, esc(name)) for c, name in surface.channels])]

    def listed(options: Any) -> list[tuple[str, str]]:
        return [(str(o.get("value", "")), text_html(o.get("text"), surface))
                for o in options or [] if isinstance(o, dict)]

    groups: list[tuple[str | None, list[tuple[str, str]]]] = [(None, listed(element.get("options")))]
    for group in element.get("option_groups") or []:
        if isinstance(group, dict):
            label = (group.get("label") or {}).get("text", "")
            groups.append((str(label), listed(group.get("options"))))
    return groups


def _select(element: JSON, surface: Surface, data: str, kind: str, chosen: Any) -> str:
    multiple = kind.startswith("multi_")
    placeholder = element.get("placeholder")
    prompt = "\u22ef" if kind == "overflow" else (
        str(placeholder.get("text", "")) if isinstance(placeholder, dict) else "Select an item")
    picked = set(chosen or []) if multiple else {chosen}
    items = [] if multiple else [f'<option value="" disabled{" selected" if chosen is None else ""}>'
                                 f"{esc(prompt)}</option>"]
    for label, options in _options(element, surface, kind):
        shown = "".join(f'<option value="{esc(v)}"{" selected" if v in picked else ""}>{html}</option>'
                        for v, html in options)
        items.append(f'<optgroup label="{esc(label)}">{shown}</optgroup>' if label is not None else shown)
    title = _attr("title", prompt) if multiple else ""
    return (f'<select class="bk-control bk-select"{data}{" multiple" if multiple else ""}{title}>'
            f'{"".join(items)}</select>')


def _choices(element: JSON, surface: Surface, data: str, kind: str, chosen: Any) -> str:
    kind_attr = "radio" if kind == "radio_buttons" else "checkbox"
    picked = set(chosen or []) if kind == "checkboxes" else {chosen}
    name = f"{element.get('action_id', '')}-{id(element)}"
    rows = []
    for value, label in _options(element, surface, kind)[0][1]:
        rows.append(f'<label class="choice"><input type="{kind_attr}" name="{esc(name)}" value="{esc(value)}"'
                    f'{" checked" if value in picked else ""}> {label}</label>')
    return f'<div class="bk-control bk-choices"{data}>{"".join(rows)}</div>'
