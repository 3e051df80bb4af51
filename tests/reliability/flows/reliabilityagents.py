"""Agents and actions for tests/reliability/flows, loaded the way users' are (allowed by
BATON_PYTHON_MODULES, found in the flows folder)."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

_lock = threading.Lock()


def echo(ctx: Any) -> dict[str, Any]:
    """An agent that repeats what it was given, as a model might: hostile input in, hostile
    signal out."""
    note = str(ctx.inputs.get("note", ""))
    return {"verdict": "warn", "severity": "high", "confidence": 0.5, "summary": note[:4000],
            "rationale": note, "evidence": [note[:500]]}


def record(ctx: Any) -> dict[str, Any]:
    """An action that writes to the test's ledger, so a test sees how often it ran."""
    path = os.environ["BATON_EXAMPLE_LEDGER"]
    with _lock, open(path, "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps({"run": ctx.run, "key": ctx.idempotency_key,
                                 "action": ctx.action}) + "\n")
    return {"ok": True}


# `held`: an action that begins, says so, and ends only when the test lets it (at most a
# minute, so a broken test never hangs the suite). Baton runs in the test's process here.
HELD_STARTED = threading.Event()
HELD_RELEASE = threading.Event()


def held(ctx: Any) -> dict[str, Any]:
    HELD_STARTED.set()
    HELD_RELEASE.wait(60)
    return record(ctx)
