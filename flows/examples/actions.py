"""Offline example actions. They append to a JSON-lines ledger (BATON_EXAMPLE_LEDGER,
default `baton-ledger.jsonl`) so you can see exactly what ran, and how many times."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any


def _record(kind: str, ctx: Any, **data: Any) -> dict[str, Any]:
    entry = {"kind": kind, "run": ctx.run, "idempotency_key": ctx.idempotency_key,
             "at": datetime.now(UTC).isoformat(), **data}
    path = os.environ.get("BATON_EXAMPLE_LEDGER", "baton-ledger.jsonl")
    with open(path, "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(entry) + "\n")
    return entry


def send_payment(ctx: Any) -> dict[str, Any]:
    entry = _record("payment", ctx, vendor=ctx.inputs["vendor"], amount=ctx.inputs["amount"])
    return {"payment_id": f"PAY-{ctx.run}", "amount": entry["amount"], "vendor": entry["vendor"]}


def tag_release(ctx: Any) -> dict[str, Any]:
    _record("release", ctx, version=ctx.inputs["version"])
    return {"tag": f"v{ctx.inputs['version']}"}
