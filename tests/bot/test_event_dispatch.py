"""Every event kind the orchestrator emits has an entry in each durable sink's table: a
handler, or None where that sink deliberately does nothing. A reader greps an emitted kind
(`event="gate_opened"`) and finds its handler in one step (`"gate_opened":
SlackSink.on_gate_opened`); a kind added without an entry fails here, not in Slack."""

from __future__ import annotations

import ast
from pathlib import Path

from bot.callbacks import KINDS as CALLBACK_KINDS
from bot.notifier import ON_EVENT, SlackSink
from orchestrator.events import EVENT_KINDS
from tests.source_literals import literals

ROOT = Path(__file__).resolve().parents[2]


def _emitted_kinds() -> dict[str, str]:
    """The kinds written as literals where events are announced: `tx.record(..., event=KIND)`,
    `tx.announce(KIND, ...)` and `DomainEvent(None, KIND, ...)` in orchestrator/ and bot/,
    each with where it is announced."""
    found: dict[str, str] = {}
    for path in sorted([*(ROOT / "orchestrator").rglob("*.py"), *(ROOT / "bot").rglob("*.py")]):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            name = (call.func.id if isinstance(call.func, ast.Name) else
                    call.func.attr if isinstance(call.func, ast.Attribute) else None)
            if name == "record":
                kinds = [k.value for k in call.keywords if k.arg == "event"]
            elif name == "announce" and isinstance(call.func, ast.Attribute) and call.args:
                kinds = [call.args[0]]
            elif name == "DomainEvent" and len(call.args) > 1:
                kinds = [call.args[1]]
            else:
                continue
            for kind in kinds:
                for literal in literals(kind):
                    found.setdefault(literal, f"{path.relative_to(ROOT)}:{call.lineno}")
    return found


def test_every_emitted_kind_is_a_known_kind() -> None:
    emitted = _emitted_kinds()
    # the scan must see the emit calls: if events are emitted some other way, point it there
    assert len(emitted) >= 15, sorted(emitted)
    unknown = {kind: where for kind, where in emitted.items() if kind not in EVENT_KINDS}
    assert not unknown, f"emitted but not in orchestrator.events.EVENT_KINDS: {unknown}"


def test_the_slack_sink_has_an_entry_for_every_kind_and_no_other() -> None:
    assert set(ON_EVENT) == set(EVENT_KINDS), (
        f"no entry in bot.notifier.ON_EVENT: {sorted(EVENT_KINDS - set(ON_EVENT))}; "
        f"not an event kind: {sorted(set(ON_EVENT) - EVENT_KINDS)}")
    for kind, handler in ON_EVENT.items():
        assert handler is None or getattr(SlackSink, handler.__name__, None) is handler, kind


def test_the_callback_sink_has_an_entry_for_every_kind_and_no_other() -> None:
    assert set(CALLBACK_KINDS) == set(EVENT_KINDS), (
        f"no entry in bot.callbacks.KINDS: {sorted(EVENT_KINDS - set(CALLBACK_KINDS))}; "
        f"not an event kind: {sorted(set(CALLBACK_KINDS) - EVENT_KINDS)}")
    # the callback types docs/api.md documents
    assert {v for v in CALLBACK_KINDS.values() if v} == {"action.due", "gate.decided", "run.finished"}
