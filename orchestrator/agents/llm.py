"""`kind: llm`: an OpenAI-compatible chat model answering with structured output.

The judgment is the model's; everything around it is Baton's and deterministic:

- The client is the `openai` package, configured by its own `OPENAI_API_KEY` and
  `OPENAI_BASE_URL` (so OpenAI, Azure OpenAI's v1 endpoint, Ollama, vLLM and llama.cpp all
  work), overridden per flow (`llm:`) or per agent (`base_url`, `api_key_env`, `model`)
  as far as the operator's settings allow (orchestrator/reach.py), checked before every
  call; redirects are not followed.
- Its own retries are off (`max_retries=0`): every attempt is `run_agent`'s, so it is
  traced, backs off with jitter, and honours `Retry-After`. 429, 5xx, timeouts and
  connection errors are retried; other 4xx are not. A refused key, an unknown model, a
  redirect or a server still unreachable are setup problems (`AgentFailure.setup`).
- The answer is asked for as a JSON schema (structured output). A server that refuses
  schemas in any way (`refuses_schema`) is asked again in JSON mode, with the schema in the
  instructions, and remembered for later calls. Either way the answer is validated here.
- An invalid or truncated answer gets exactly one second chance, with the validation
  error; a second invalid answer fails the agent with the raw text in the trace.
- Each answer carries the tokens of every call it took and a cost estimated from the
  price table (`BATON_LLM_PRICES`); log lines carry run, step and agent.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import openai
import structlog

from orchestrator.agents.answers import InvalidAnswer, Role, json_schema, parse_answer, schema_name
from orchestrator.agents.base import (
    AgentContext,
    AgentFailure,
    AgentOutput,
    PermanentAgentFailure,
    SetupFailure,
)
from orchestrator.agents.endpoints import Endpoint, api_key, endpoint
from orchestrator.agents.prices import PriceTable
from orchestrator.agents.prompts import Prompt, correction
from orchestrator.reach import Reach
from orchestrator.spec import LlmAgent, LlmDefaults

__all__ = ["Endpoint", "LlmAgentRunner", "client_for", "endpoint", "refuses_schema",
           "retry_after_seconds"]

log = structlog.get_logger("baton.llm")

# A server that refuses JSON-schema output says so in many ways: 400 or 422 (OpenAI-style
# servers), 501, or a 500 naming the field (llama-cpp-python: "Input should be 'text' or
# 'json_object'", with `response_format` and 'json_schema' in the validation error).
SCHEMA_REFUSALS = (400, 415, 422, 501)
_SCHEMA_WORDS = re.compile(r"response[_ ]?format|json[_ ]?schema|json_object|structured[_ ]output",
                           re.IGNORECASE)
# Statuses that are about the key, the rate or the model whatever the message says.
_NOT_ABOUT_SCHEMA = (401, 403, 404, 408, 429)


def refuses_schema(status: int, message: str) -> bool:
    """Whether an error answer to a JSON-schema request means "not this way": ask again in
    JSON mode rather than fail or retry the same request."""
    if status in SCHEMA_REFUSALS:
        return True
    return status >= 400 and status not in _NOT_ABOUT_SCHEMA and bool(_SCHEMA_WORDS.search(message))


_clients: dict[tuple[str | None, str], openai.OpenAI] = {}
_clients_lock = threading.Lock()
# (base_url, model) pairs whose server refused JSON-schema output: JSON mode from then on.
_json_mode_only: set[tuple[str | None, str]] = set()


def client_for(where: Endpoint, reach: Reach | None = None) -> openai.OpenAI:
    """One client (one connection pool) per server and key, shared by every agent. The
    server and key are checked against the operator's settings first, every time."""
    reach = reach if reach is not None else Reach()
    key = api_key(where, reach)
    cache_key = (where.base_url, hashlib.sha256(key.encode()).hexdigest())
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            # Redirects are not followed: a server allowed by the settings must not hand the
            # request (the key, the run's data) on to one that is not.
            client = openai.OpenAI(api_key=key, base_url=where.base_url, max_retries=0,
                                   default_headers=_headers_for(where, reach, key),
                                   http_client=openai.DefaultHttpxClient(follow_redirects=False))
            _clients[cache_key] = client
        return client


def _headers_for(where: Endpoint, reach: Reach, key: str) -> dict[str, Any] | None:
    """The openai client adds headers of its own from the environment: OPENAI_ORG_ID,
    OPENAI_PROJECT_ID, and OPENAI_CUSTOM_HEADERS, which may hold a gateway's credentials and
    whose `Authorization` even replaces the key. They are the operator's settings for
    OPENAI_BASE_URL's server: any other server gets the key Baton checked, and nothing else."""
    if reach.is_default_server(where.label):
        return None
    ambient = ["OpenAI-Organization", "OpenAI-Project"]
    for line in os.environ.get("OPENAI_CUSTOM_HEADERS", "").split("\n"):
        name, colon, _ = line.partition(":")
        if colon and name.strip():
            ambient.append(name.strip())
    headers: dict[str, Any] = {name: openai.omit for name in ambient}
    headers["Authorization"] = f"Bearer {key}"
    return headers


# -- one agent call ---------------------------------------------------------------------------
@dataclass
class Usage:
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    model: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "model": self.model}


@dataclass
class Reply:
    text: str | None
    finish_reason: str | None
    refusal: str | None = None


@dataclass
class _Call:
    """The state of one attempt: its deadline, the mode in use, what it has spent."""

    deadline: float
    timeout: float
    mode: str
    usage: Usage = field(default_factory=Usage)


def retry_after_seconds(headers: Any) -> float | None:
    """`retry-after-ms`, or `Retry-After` in seconds or as an HTTP date."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)[:500]
    return str(exc.message)[:500]


class LlmAgentRunner:
    kind = "llm"
    inline = False

    def __init__(self, name: str, spec: LlmAgent, flow: str, defaults: LlmDefaults, role: Role,
                 default_model: str, prices: PriceTable, reach: Reach | None = None) -> None:
        self.name = name
        self.spec = spec
        self.role = role
        self.where = endpoint(spec, defaults, default_model)
        self.reach = reach if reach is not None else Reach()
        self.prices = prices
        self.prompt = Prompt(name, flow, spec.instructions, spec.input, role)
        self.schema = json_schema(role)
        # Built in the step's thread: keep its log context (run, flow, step) for the
        # worker thread the call runs in.
        self.log_context = structlog.contextvars.get_contextvars()
        # The first client of a process takes a while (TLS setup): not part of a call's latency.
        with contextlib.suppress(PermanentAgentFailure):  # reported by run(), where it is traced
            client_for(self.where, self.reach)

    # -- the protocol run_agent drives -------------------------------------------------------
    def run(self, ctx: AgentContext) -> AgentOutput:
        logger = log.bind(**{**self.log_context, "run": ctx.run, "agent": self.name,
                             "attempt": ctx.attempt})
        if ctx.subtask is not None:
            logger = logger.bind(subtask=ctx.subtask.get("index"))
        client = client_for(self.where, self.reach)
        timeout = self.spec.timeout.total_seconds()
        call = _Call(time.monotonic() + timeout, timeout, self._mode())
        messages = self.prompt.messages(ctx, self.schema if call.mode == "json_object" else None)
        reply, messages = self._ask(client, messages, call, logger)
        try:
            output = self._parse(reply, call.usage)
        except InvalidAnswer as first:
            logger.warning("llm_answer_invalid", error=str(first), second_chance=True)
            reply, _ = self._ask(client, correction(messages, reply.text, str(first)), call, logger)
            try:
                output = self._parse(reply, call.usage)
            except InvalidAnswer as second:
                logger.warning("llm_answer_invalid", error=str(second), second_chance=False)
                raise PermanentAgentFailure(
                    f"invalid answer twice: {first}; after the correction: {second}",
                    raw=reply.text, usage=self._spent(call.usage)) from None
        return self._account(output, call.usage, logger)

    # -- pieces ------------------------------------------------------------------------------
    def _mode(self) -> str:
        if self.where.response_format != "auto":
            return self.where.response_format
        if (self.where.base_url, self.where.model) in _json_mode_only:
            return "json_object"
        return "json_schema"

    def _response_format(self, mode: str) -> dict[str, Any]:
        if mode == "json_schema":
            return {"type": "json_schema",
                    "json_schema": {"name": schema_name(self.role), "strict": True,
                                    "schema": self.schema}}
        return {"type": "json_object"}

    def _ask(self, client: openai.OpenAI, messages: list[dict[str, str]], call: _Call,
             logger: Any) -> tuple[Reply, list[dict[str, str]]]:
        """One answer; a server that refuses JSON-schema output is asked again in JSON mode."""
        try:
            return self._send(client, messages, call, logger), messages
        except openai.APIStatusError as exc:
            refused_schema = (call.mode == "json_schema"
                              and refuses_schema(exc.status_code, _error_text(exc)))
            if refused_schema and self.where.response_format != "auto":  # forced: say so once
                logger.warning("llm_call_failed", status=exc.status_code, error=_error_text(exc))
                raise PermanentAgentFailure(
                    f"{self.where.label} answered {exc.status_code}: {_error_text(exc)} (it does "
                    "not take JSON-schema output: set response_format: auto or json_object)"
                ) from None
            if not refused_schema:
                raise self._failure(exc, logger) from None
            logger.warning("llm_json_mode", status=exc.status_code, error=_error_text(exc),
                           server=self.where.label, model=self.where.model)
            call.mode = "json_object"
            messages = [{"role": "system", "content": self.prompt.system(self.schema)},
                        *messages[1:]]
            try:
                reply = self._send(client, messages, call, logger)
            except openai.APIStatusError as again:
                raise self._failure(again, logger) from None
            with _clients_lock:
                _json_mode_only.add((self.where.base_url, self.where.model))
            return reply, messages

    def _send(self, client: openai.OpenAI, messages: list[dict[str, str]], call: _Call,
              logger: Any) -> Reply:
        remaining = call.deadline - time.monotonic()
        if remaining <= 0.01:
            raise AgentFailure(f"timed out after {call.timeout:g}s")
        request: dict[str, Any] = {
            "model": self.where.model, "messages": messages,
            "max_completion_tokens": self.spec.max_output_tokens,
            "response_format": self._response_format(call.mode), "timeout": remaining,
        }
        if self.spec.temperature is not None:
            request["temperature"] = self.spec.temperature
        started = time.perf_counter()
        call.usage.calls += 1
        try:
            response = client.chat.completions.create(**request)
        except openai.APIStatusError:
            raise
        except openai.APITimeoutError:
            logger.warning("llm_call_failed", error="timeout", mode=call.mode,
                           latency_ms=round((time.perf_counter() - started) * 1000, 1))
            raise AgentFailure(f"timed out after {call.timeout:g}s waiting for "
                               f"{self.where.label}") from None
        except openai.APIConnectionError as exc:
            logger.warning("llm_call_failed", error="connection", detail=str(exc))
            # Retried (a server restarting); after the last attempt, a setup problem.
            raise AgentFailure(f"could not reach {self.where.label}: {exc}", setup=True) from None
        except (openai.OpenAIError, ValueError) as exc:  # a body that is not a chat completion
            logger.warning("llm_call_failed", error="unreadable response", detail=str(exc)[:300])
            raise AgentFailure(f"{self.where.label} sent a response that is not a chat "
                               f"completion: {type(exc).__name__}: {str(exc)[:300]}") from None
        usage = response.usage
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        call.usage.tokens_in += tokens_in
        call.usage.tokens_out += tokens_out
        call.usage.model = response.model or call.usage.model
        if not response.choices:
            logger.warning("llm_call_failed", error="no choices")
            return Reply(None, None)
        choice = response.choices[0]
        message = choice.message
        logger.info("llm_call", model=self.where.model, served_by=response.model, mode=call.mode,
                    latency_ms=round((time.perf_counter() - started) * 1000, 1),
                    tokens_in=tokens_in, tokens_out=tokens_out, finish_reason=choice.finish_reason)
        return Reply(message.content, choice.finish_reason, getattr(message, "refusal", None))

    def _failure(self, exc: openai.APIStatusError, logger: Any) -> AgentFailure:
        status = exc.status_code
        text = _error_text(exc)
        where = f"{self.where.label} answered {status}: {text}"
        if status == 429:
            wait = retry_after_seconds(exc.response.headers)
            logger.warning("llm_call_failed", status=status, retry_after=wait, error=text)
            cap = self.spec.retry.max_backoff.total_seconds()
            if wait is not None and wait > cap:
                return PermanentAgentFailure(f"{where}; it asks to wait {wait:g}s, longer than "
                                             f"retry.max_backoff ({cap:g}s)")
            return AgentFailure(where, retry_after=wait)
        logger.warning("llm_call_failed", status=status, error=text)
        if status >= 500:
            return AgentFailure(where)
        hints = {401: f" (check the API key in {self.where.key_env})",
                 403: f" (check the permissions of the key in {self.where.key_env})",
                 404: f" (check the model name {self.where.model!r} and the base URL)"}
        if status in hints or 300 <= status < 400:  # the operator's to fix, not the approvers'
            moved = (" (Baton does not follow redirects: set the server's final address)"
                     if 300 <= status < 400 else "")
            return SetupFailure(where + hints.get(status, moved))
        return PermanentAgentFailure(where)

    def _parse(self, reply: Reply, usage: Usage) -> AgentOutput:
        if reply.refusal:
            raise PermanentAgentFailure(f"the model refused to answer: {reply.refusal[:500]}",
                                        raw=reply.refusal, usage=self._spent(usage))
        if reply.finish_reason == "content_filter":
            raise PermanentAgentFailure("the server's content filter stopped the answer",
                                        raw=reply.text, usage=self._spent(usage))
        if reply.finish_reason == "length":
            raise InvalidAnswer(f"the answer was cut off at max_output_tokens "
                                f"({self.spec.max_output_tokens}); answer with a shorter JSON object")
        return parse_answer(reply.text, self.role)

    def _spent(self, usage: Usage) -> dict[str, Any]:
        """What a failed answer cost: it counts toward the run's budget all the same."""
        estimate = self.prices.estimate(usage.tokens_in, usage.tokens_out, self.where.model,
                                        usage.model)
        return {**usage.as_dict(), "cost": estimate.cost}

    def _account(self, output: AgentOutput, usage: Usage, logger: Any) -> AgentOutput:
        estimate = self.prices.estimate(usage.tokens_in, usage.tokens_out, self.where.model,
                                        usage.model)
        if estimate.priced_as is None and (usage.tokens_in or usage.tokens_out):
            logger.warning("llm_price_unknown", model=self.where.model, served_by=usage.model,
                           prices=self.prices.source,
                           note="cost recorded as 0: add the model to the price table")
        return output.model_copy(update={
            "tokens_in": usage.tokens_in, "tokens_out": usage.tokens_out,
            "cost": estimate.cost, "model": usage.model or self.where.model})
