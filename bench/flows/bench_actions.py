"""The benchmark flows' action: no I/O, a small result, like the LangGraph graph's action node."""

from __future__ import annotations

from typing import Any


def pay(ctx: Any) -> dict[str, Any]:
    return {"paid": ctx.inputs.get("amount"), "key": ctx.idempotency_key}
