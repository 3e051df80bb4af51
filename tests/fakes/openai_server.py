"""An OpenAI-compatible chat completions server on loopback, with scripted answers.

It stands in for the model server we do not own: the real `openai` client talks to it
over HTTP exactly as it talks to OpenAI, Ollama or vLLM. Nothing is patched.

    with FakeOpenAI() as llm:
        llm.script(Reply(status=429, retry_after=2), Reply(signal(verdict="ok")),
                   match='agent "risk"')
        os.environ["OPENAI_BASE_URL"] = llm.base_url
        ...
        assert llm.requests[0].body["response_format"]["type"] == "json_schema"

A script answers the requests whose messages contain `match` (scripts without a match
answer the requests no other script matches), one reply per request, in order; its last
reply repeats. Every request is recorded with
its body, the server-side time it arrived and was answered, and the status sent.

An agent's turn that calls tools is scripted with `call(...)` (the chat completions
`tool_calls` shape, `finish_reason: "tool_calls"`); the tool results the agent sends back
are in the next request's `tool` messages (`Recorded.tool_results`):

    llm.script(Reply(tool_calls=[call("pay_vendor", vendor="ACME", amount=20000)]),
               Reply("Paid."), match="INV-4471")
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import LoopbackServer

PRICES = Path(__file__).resolve().parent / "prices.yaml"

# How servers that cannot give JSON-schema output answer a request for it: (status, message,
# error type). OpenAI-style servers say so with a 400.
OPENAI_STYLE_400 = (400, "response_format type 'json_schema' is not supported by this server",
                    "invalid_request_error")
# llama-cpp-python's server (`python -m llama_cpp.server`): its request model allows only
# 'text' and 'json_object', and its routes' error handler (llama_cpp/server/errors.py) turns
# the validation error into a 500 whose message is the error list, as str() prints it.
LLAMA_CPP_PYTHON_500 = (
    500, "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': "
         "\"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': "
         "{'expected': \"'text' or 'json_object'\"}}]", "internal_server_error")


def point_baton_at(monkeypatch: pytest.MonkeyPatch, server: FakeOpenAI) -> None:
    """Configure Baton's llm agents the way a user would: the openai client's own
    variables, and a price table."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("BATON_LLM_PRICES", str(PRICES))
    monkeypatch.delenv("BATON_LLM_MODEL", raising=False)


def agent(name: str) -> str:
    """A script match for one agent's calls: its name as Baton's system message gives it."""
    return f'the agent "{name}"'


def signal(verdict: str = "ok", severity: str = "info", confidence: float = 0.9,
           summary: str = "Looks fine", rationale: str = "Nothing unusual in the data",
           evidence: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A valid signal answer."""
    return {"verdict": verdict, "severity": severity, "confidence": confidence,
            "summary": summary, "rationale": rationale, "evidence": evidence or [], **extra}


def call(name: str, id: str | None = None, **arguments: Any) -> dict[str, Any]:
    """One scripted tool call: the function's name and its arguments (sent as JSON text)."""
    return {"name": name, "arguments": arguments, "id": id}


@dataclass
class Reply:
    content: str | dict[str, Any] | None = None  # a dict is sent as its JSON text
    status: int = 200
    error: str = "scripted error"
    retry_after: float | str | None = None
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer (until the client gives up or the server stops)
    finish_reason: str = "stop"
    prompt_tokens: int = 120
    completion_tokens: int = 40
    refusal: str | None = None
    model: str | None = None  # the model the server says answered; default: the one asked
    raw_body: str | None = None  # sent as is, instead of a chat completion
    location: str | None = None  # with a 3xx status: where the server redirects
    tool_calls: list[dict[str, Any]] | None = None  # `call(...)`s: the model calls tools


@dataclass
class Recorded:
    body: dict[str, Any]
    started: float  # time.monotonic() when the request arrived
    headers: dict[str, str] = field(default_factory=dict)
    finished: float | None = None
    status: int | None = None
    script: str | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system(self) -> str:
        return next((m["content"] for m in self.messages if m["role"] == "system"), "")

    @property
    def user(self) -> str:
        return next((m["content"] for m in self.messages if m["role"] == "user"), "")

    @property
    def response_format(self) -> str | None:
        return (self.body.get("response_format") or {}).get("type")

    def text(self) -> str:
        return "\n".join(str(m.get("content", "")) for m in self.messages)

    def tool_results(self) -> dict[str, str]:
        """What the agent sent back for each tool call: call id -> the tool message's text."""
        return {m["tool_call_id"]: _text(m.get("content")) for m in self.messages
                if m.get("role") == "tool"}


@dataclass
class _Script:
    match: str | None
    replies: list[Reply]
    served: int = 0

    def next(self) -> Reply:
        reply = self.replies[min(self.served, len(self.replies) - 1)]
        self.served += 1
        return reply


@dataclass
class FakeOpenAI:
    structured_outputs: bool = True  # False: refuse response_format json_schema with a 400
    requests: list[Recorded] = field(default_factory=list)
    # How to refuse json_schema (OPENAI_STYLE_400, LLAMA_CPP_PYTHON_500); None: as above.
    schema_refusal: tuple[int, str, str] | None = None

    def __post_init__(self) -> None:
        self._scripts: list[_Script] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ids = itertools.count(1)
        app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"]),
                                Route("/v1/models", self._models, methods=["GET"])])
        self._server = LoopbackServer(app)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        self._server.start()
        return self

    def stop(self) -> None:
        self._closing.set()  # hanging requests give up first, so stopping is quick
        self._server.stop()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"{self._server.url}/v1"

    # -- scripting -------------------------------------------------------------------------
    def script(self, *replies: Reply | dict[str, Any] | str, match: str | None = None) -> None:
        if not replies:
            raise ValueError("script at least one reply")
        items = [r if isinstance(r, Reply) else Reply(r) for r in replies]
        with self._lock:
            self._scripts.append(_Script(match, items))

    def served(self, match: str | None = None) -> list[Recorded]:
        """Requests answered by the script with this match."""
        with self._lock:
            return [r for r in self.requests if r.script == match and r.status is not None]

    def _pick(self, record: Recorded) -> Reply | None:
        text = record.text()
        with self._lock:
            # Scripts that match something come first; match=None ones answer the rest.
            ordered = sorted(self._scripts, key=lambda s: s.match is None)
            for script in ordered:
                if script.match is None or script.match in text:
                    record.script = script.match
                    return script.next()
        return None

    # -- the API ---------------------------------------------------------------------------
    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": []})

    async def _completions(self, request: Request) -> Response:
        record = Recorded(body={}, started=time.monotonic(), headers=dict(request.headers))
        with self._lock:
            self.requests.append(record)
        try:
            record.body = json.loads(await request.body())
        except ValueError:
            return self._finish(record, _error(400, "the body is not JSON"))
        refusal = self.schema_refusal or (None if self.structured_outputs else OPENAI_STYLE_400)
        if refusal is not None and record.response_format == "json_schema":
            status, message, kind = refusal
            return self._finish(record, _error(status, message, kind=kind,
                                               param="response_format" if status < 500 else None))
        reply = self._pick(record)
        if reply is None:
            return self._finish(record, _error(500, "nothing scripted for this request"))
        if reply.hang:
            while not self._closing.is_set() and not await request.is_disconnected():
                await anyio.sleep(0.02)
            return self._finish(record, _error(504, "gave up"))
        if reply.delay:
            await anyio.sleep(reply.delay)
        if reply.raw_body is not None:
            return self._finish(record, Response(reply.raw_body, reply.status,
                                                 media_type="application/json"))
        if reply.location is not None:
            return self._finish(record, Response(status_code=reply.status,
                                                 headers={"location": reply.location}))
        if reply.status != 200:
            headers = {"retry-after": str(reply.retry_after)} if reply.retry_after is not None else {}
            return self._finish(record, _error(reply.status, reply.error, headers=headers))
        return self._finish(record, JSONResponse(self._completion(record.body, reply)))

    def _finish(self, record: Recorded, response: Response) -> Response:
        record.finished = time.monotonic()
        record.status = response.status_code
        return response

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content = reply.content
        if isinstance(content, dict):
            content = json.dumps(content)
        message: dict[str, Any] = {"role": "assistant", "content": content,
                                   "refusal": reply.refusal}
        finish_reason = reply.finish_reason
        if reply.tool_calls:
            message["tool_calls"] = [self._tool_call(c) for c in reply.tool_calls]
            finish_reason = "tool_calls" if finish_reason == "stop" else finish_reason
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or body.get("model", "unknown"),
            "choices": [{"index": 0, "finish_reason": finish_reason, "logprobs": None,
                         "message": message}],
            "usage": {"prompt_tokens": reply.prompt_tokens,
                      "completion_tokens": reply.completion_tokens,
                      "total_tokens": reply.prompt_tokens + reply.completion_tokens},
        }


    def _tool_call(self, scripted: dict[str, Any]) -> dict[str, Any]:
        arguments = scripted["arguments"]
        return {"id": scripted.get("id") or f"call_fake_{next(self._ids)}", "type": "function",
                "function": {"name": scripted["name"],
                             "arguments": arguments if isinstance(arguments, str)
                             else json.dumps(arguments)}}


def _text(content: Any) -> str:
    """A message's content as text (a string, or a list of text parts)."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _error(status: int, message: str, *, param: str | None = None,
           headers: dict[str, str] | None = None, kind: str | None = None) -> JSONResponse:
    kind = kind or {400: "invalid_request_error", 401: "authentication_error",
                    404: "not_found_error", 429: "rate_limit_error"}.get(status, "server_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}},
                        status_code=status, headers=headers)
