"""The sandbox's call log: every Web API call the bot made (the emulator's `CallLog`) and
every request the sandbox sent the bot on someone's behalf, drawn as rows for `/_calls`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from sandbox.calls import Call
from sandbox.driver import Delivery
from sandbox.ui.mrkdwn import esc


@dataclass(frozen=True)
class Sent:
    """One request the sandbox sent to the bot on someone's behalf, for the call log page."""

    at: float
    what: str
    status: int
    elapsed: float
    payload: Any
    answer: Any


class SentLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Sent] = []

    def add(self, what: str, delivery: Delivery) -> None:
        body = delivery.request.body.decode(errors="replace")
        try:
            if body.startswith("payload="):
                payload: Any = json.loads(parse_qs(body)["payload"][0])
            elif body.startswith("{"):
                payload = json.loads(body)
            else:
                payload = dict(parse_qsl(body))
        except (ValueError, KeyError):
            payload = body
        with self._lock:
            self._items.append(Sent(time.time(), what, delivery.status, delivery.elapsed, payload,
                                    delivery.json() if delivery.json() is not None else delivery.body))

    def items(self) -> list[Sent]:
        with self._lock:
            return list(self._items)


def calls_html(calls: Sequence[Call], start: int = 0) -> str:
    """Rows of the Web API call log, numbered from `start` + 1."""
    rows = []
    for number, call in enumerate(calls, start + 1):
        rows.append(call_html(number, call))
    return "".join(rows)


def call_html(number: int, call: Call) -> str:
    error = call.error
    outcome = "ok" if call.ok else (error or ("no answer" if call.status == 0 else f"HTTP {call.status}"))
    fault = f' <span class="fault">fault: {esc(call.fault.describe())}</span>' if call.fault else ""
    response = call.response if call.response is not None else "(no answer: the connection was dropped)"
    summary = _call_summary(call)
    at = datetime.fromtimestamp(call.at).strftime("%H:%M:%S.%f")[:-3]
    return (f'<details class="call {"ok" if call.ok else "failed"}" data-method="{esc(call.method)}">'
            f'<summary><span class="n">#{number}</span> <time>{at}</time> '
            f'<span class="method">{esc(call.method)}</span> <span class="outcome">{esc(outcome)}</span>'
            f'{fault} <span class="gist">{esc(summary)}</span></summary>'
            f'<div class="cols"><div><h4>arguments</h4><pre>{esc(_json(call.args))}</pre></div>'
            f'<div><h4>response</h4><pre>{esc(_json(response))}</pre></div></div></details>')


def _call_summary(call: Call) -> str:
    args = call.args
    parts = [f"{key}={args[key]}" for key in ("channel", "user", "user_id", "ts", "thread_ts", "view_id")
             if isinstance(args.get(key), str)]
    text = args.get("text")
    if isinstance(text, str) and text:
        parts.append(repr(text[:80] + ("…" if len(text) > 80 else "")))
    return " ".join(parts)


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def sent_html(number: int, sent: Sent) -> str:
    at = time.strftime("%H:%M:%S", time.localtime(sent.at)) + f".{int(sent.at * 1000) % 1000:03d}"
    ok = sent.status == 200
    answer = sent.answer if sent.answer not in (None, "") else "(empty: acknowledged)"
    return (f'<details class="call sent {"ok" if ok else "failed"}" data-method="to the bot">'
            f'<summary><span class="n">\u2192 bot</span> <time>{at}</time> '
            f'<span class="method">{esc(sent.what)}</span> <span class="outcome">HTTP {sent.status} in '
            f"{sent.elapsed * 1000:.0f} ms</span></summary>"
            f'<div class="cols"><div><h4>payload (signed, as Slack sends it)</h4>'
            f"<pre>{esc(json.dumps(sent.payload, indent=2, ensure_ascii=False, default=str))}</pre></div>"
            f"<div><h4>the bot's answer</h4>"
            f"<pre>{esc(answer if isinstance(answer, str) else json.dumps(answer, indent=2))}</pre></div>"
            f"</div></details>")
