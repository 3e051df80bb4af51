"""Named places where a test kills Baton, to prove a crash there loses nothing.

Off in normal use: `BATON_CRASH_AT` is read once at import, and an unset variable makes
`crash_point` a single comparison. `BATON_CRASH_AT=decision.recorded` kills the process
with SIGKILL (no cleanup, no flush: as a power cut or the OOM killer would) the first time
it reaches that point; `signal.stored:2` the second time.

The points (the tests in tests/crash/ and tests/api/test_crash_callback.py kill Baton there):

| point | where |
|---|---|
| `step.committed` | a step's transition committed (a step boundary) |
| `agents.done` | agents answered, their signals not yet written |
| `signal.stored` | signals written, the transaction not yet committed |
| `gate.opened` | a gate written, not yet committed |
| `decision.recorded` | a decision written, not yet committed |
| `decision.committed` | a decision committed, the run not yet resumed (inline: its next steps too) |
| `action.started` | the action's row committed (at most once), the call not yet made |
| `action.done` | the call returned, its result not yet written |
| `outbox.written` | an event turned into Slack calls, not yet committed |
| `message.sent` | Slack took a message, it is not yet marked sent |
| `callback.sent` | a signed callback answered 2xx, the delivery not yet marked done |
| `request.accepted` | a Slack request stored and acknowledged, its work not yet begun |
"""

from __future__ import annotations

import os
import signal
import threading

_TARGET = os.environ.get("BATON_CRASH_AT") or None
_name, _, _nth = (_TARGET or "").partition(":")
_WANTED = int(_nth) if _nth.isdigit() else 1
_seen = 0
_lock = threading.Lock()


def crash_point(name: str) -> None:
    if _TARGET is None or name != _name:
        return
    global _seen
    with _lock:
        _seen += 1
        if _seen == _WANTED:
            os.kill(os.getpid(), signal.SIGKILL)
