"""Decision options and the rules a single decision must pass before it counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# approve/reject/request_changes decide a gate; escalate hands it to the next level of its
# chain now; retry runs the step again (an agent that failed, an action whose outcome is
# unknown).
Effect = Literal["approve", "reject", "request_changes", "escalate", "retry"]

BUILTIN_OPTIONS: dict[str, dict[str, Any]] = {
    "approve": {"label": "Approve", "effect": "approve", "style": "primary"},
    "reject": {"label": "Reject", "effect": "reject", "style": "danger"},
    "request_changes": {"label": "Request changes", "effect": "request_changes", "style": None},
}


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    effect: Effect
    style: str | None = None
    reason_required: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "effect": self.effect, "style": self.style,
                "reason_required": self.reason_required}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Option:
        return cls(id=data["id"], label=data["label"], effect=data["effect"],
                   style=data.get("style"), reason_required=bool(data.get("reason_required")))


class Refusal(Exception):
    """A decision that is not allowed; the message tells the person why and what to do."""


def find_option(options: list[Option], option_id: str) -> Option:
    wanted = option_id.strip().lower().replace("-", "_").replace(" ", "_")
    for option in options:
        if option.id == wanted or option.label.lower() == option_id.strip().lower():
            return option
    raise Refusal(f"{option_id!r} is not an option here; choose one of: "
                  + ", ".join(o.id for o in options))


# Said by every surface alike; each says how it takes a reason (the CLI: --reason)
REASON_NEEDED = "needs a reason: say why"


def check_reason(option: Option, reason: str | None) -> str | None:
    text = (reason or "").strip()
    if option.reason_required and not text:
        raise Refusal(f"{option.label} {REASON_NEEDED}")
    return text or None
