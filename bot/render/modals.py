"""Modals: the reason a decision needs, and edit-and-approve."""

from __future__ import annotations

import json
from typing import Any

from bot.blocks import context, mrkdwn, plain, section
from bot.render.gates import GateView

REASON_BLOCK = "reason"
REASON_ACTION = "reason_input"


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


def edit_modal(gate: GateView, inputs: dict[str, Any], types: dict[str, str],
               origin: dict[str, Any], reason_required: bool) -> dict[str, Any]:
    meta = {"g": gate.id, **origin}
    blocks: list[dict[str, Any]] = [section(plain(gate.title, 2000))]
    for name in gate.editable:
        value = inputs.get(name)
        element: dict[str, Any]
        if types.get(name) in ("number", "integer"):
            element = {"type": "number_input", "action_id": "value",
                       "is_decimal_allowed": types.get(name) == "number"}
            if value is not None:
                element["initial_value"] = (f"{value:g}" if isinstance(value, float) else str(value))
        else:
            element = {"type": "plain_text_input", "action_id": "value", "max_length": 2000}
            if value is not None:
                element["initial_value"] = str(value)[:2000]
        blocks.append({"type": "input", "block_id": f"edit:{name}", "label": plain(name, 2000),
                       "element": element})
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
