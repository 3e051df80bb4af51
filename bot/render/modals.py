"""Modals: the reason a decision needs, and edit-and-approve.

The edit modal shows each value exactly as it will be submitted: submitting it unchanged
changes nothing. A number is written out in full (12345.678, 12345678; never 12345.7 or
1.23457e+07). A value an input cannot hold as it is (longer than Slack lets an input hold,
or with invisible or direction-changing characters, which every text Baton shows drops) is
shown read-only, the way Baton shows any text, and kept: it has no input, so the submission
leaves it unchanged. An input that has no value (an optional one nobody gave) or an empty
one may be left empty, and then stays as it was.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from bot.blocks import clean, context, esc, mrkdwn, plain, section
from bot.render.gates import GateView

REASON_BLOCK = "reason"
REASON_ACTION = "reason_input"
# Slack's limits for a plain_text_input's initial_value and max_length.
MAX_INPUT = 3000


def _reason_input(required: bool, label: str = "Why?") -> dict[str, Any]:
    return {"type": "input", "block_id": REASON_BLOCK, "optional": not required,
            "label": plain(label, 2000),
            "element": {"type": "plain_text_input", "action_id": REASON_ACTION, "multiline": True,
                        "max_length": 2000,
                        "placeholder": plain("Say why, for the people who read the trace later", 150)}}


def reason_modal(gate: GateView, option: dict[str, Any], origin: dict[str, Any]) -> dict[str, Any]:
    meta = {"g": gate.id, "o": option["id"], **origin}
    return {
        "type": "modal",
        "callback_id": "gate.reason",
        "private_metadata": json.dumps(meta, separators=(",", ":")),
        "title": plain(f"{option['label']} {gate.run}", 24),
        "submit": plain(option["label"], 24),
        "close": plain("Cancel", 24),
        "blocks": [
            section(plain(gate.title, 2000)),
            context(mrkdwn(f"Gate `{gate.key}` of {gate.run}")),
            _reason_input(bool(option.get("reason_required"))),
        ],
    }


def exact_number(value: Any, kind: str | None) -> str | None:
    """`value` written out in full, so that reading it back gives the same number; None when
    it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) or (kind == "integer" and value.is_integer()):
        return str(int(value))
    if kind == "integer":  # a fraction an integer field cannot hold
        return None
    # repr is the shortest text that reads back as this float; Decimal spells out its exponent
    shown = format(Decimal(repr(value)), "f")
    return shown.removesuffix(".0") if shown.endswith(".0") else shown


def _editable_text(value: str) -> bool:
    return len(value) <= MAX_INPUT and clean(value) == value


def _kept(name: str, value: Any, why: str) -> list[dict[str, Any]]:
    """A value shown read-only (as Baton shows any text), with why it is kept as it is. One
    block, like an input: a flow's 50 inputs, each kept, still make a modal within Slack's
    100 blocks (two blocks each made 102, and Slack refused to open it)."""
    return [section(mrkdwn(f"*{esc(name)}* · _{why}; it is kept as it is._"),
                    fields=[plain(value, 2000, more="(shortened here)")])]


def edit_modal(gate: GateView, inputs: dict[str, Any], types: dict[str, str],
               origin: dict[str, Any], reason_required: bool) -> dict[str, Any]:
    meta = {"g": gate.id, **origin}
    blocks: list[dict[str, Any]] = [section(plain(gate.title, 2000))]
    for name in gate.editable:
        value = inputs.get(name)
        kind = types.get(name)
        element: dict[str, Any]
        if kind in ("number", "integer"):
            element = {"type": "number_input", "action_id": "value",
                       "is_decimal_allowed": kind == "number"}
            shown = exact_number(value, kind)
            if value is not None and (shown is None or len(shown) > MAX_INPUT):
                blocks += _kept(name, value, "Not a number this field can hold")
                continue
            if shown is not None:
                element["initial_value"] = shown
        else:
            text = ("true" if value else "false") if isinstance(value, bool) else \
                (None if value is None else str(value))
            if text is not None and not _editable_text(text):
                why = (f"Too long to edit here ({len(text):,} characters)" if len(text) > MAX_INPUT
                       else "Contains invisible or direction-changing characters, not shown")
                blocks += _kept(name, text, why)
                continue
            element = {"type": "plain_text_input", "action_id": "value", "max_length": MAX_INPUT,
                       "multiline": bool(text and "\n" in text)}
            if text:
                element["initial_value"] = text
        block = {"type": "input", "block_id": f"edit:{name}", "label": plain(name, 2000),
                 "element": element}
        if value is None or value == "":  # nothing to keep: left empty, it stays so
            block["optional"] = True
        blocks.append(block)
    blocks.append(_reason_input(reason_required, "Why these values?"))
    return {
        "type": "modal",
        "callback_id": "gate.edit",
        "private_metadata": json.dumps(meta, separators=(",", ":")),
        "title": plain(f"Edit & approve {gate.run}", 24),
        "submit": plain("Approve", 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    }
