"""`Baton` (blocking) and `AsyncBaton`: Baton's approval API, one method per endpoint.

Both read `BATON_URL` and `BATON_TOKEN` when not given them. A call that is safe to repeat
(a read, a long poll, a start carrying an Idempotency-Key, which `start` always sends) is
tried again when the connection fails; a report that may have reached Baton before its
connection failed is checked against the run rather than sent twice.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from baton_client.errors import BatonError, Conflict, api_error
from baton_client.runs import Run

MAX_POLL = 60.0  # what one long poll may ask the server for
ATTEMPTS = 4


@dataclass
class Call:
    """One request, described without doing it (both clients send it their own way)."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    retry: bool = False  # safe to send again after a connection failure
    timeout: float | None = None


def _ref(run: Run | str) -> str:
    return run.id if isinstance(run, Run) else str(run)


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:500]
        raise api_error(response.status_code, body)
    return response.json()


def _backoff(attempt: int) -> float:
    return min(5.0, 0.25 * 2 ** attempt)


class _Calls:
    """The endpoints, as `Call`s."""

    @staticmethod
    def start(flow: str, inputs: Mapping[str, Any] | None, tool: str | None,
              summary: str | None, callback_url: str | None, key: str) -> Call:
        body: dict[str, Any] = {"flow": flow, "inputs": dict(inputs or {})}
        for name, value in (("tool", tool), ("summary", summary), ("callback_url", callback_url)):
            if value is not None:
                body[name] = value
        return Call("POST", "/runs", json=body, headers={"Idempotency-Key": key}, retry=True)

    @staticmethod
    def report(run: Run | str, approval: str, arguments: Mapping[str, Any], status: str,
               result: Any, error: str | None) -> Call:
        body: dict[str, Any] = {"approval": approval, "arguments": dict(arguments),
                                "status": status}
        if status == "succeeded":
            body["result"] = result
        if error is not None:
            body["error"] = error[:4000]
        return Call("POST", f"/runs/{_ref(run)}/result", json=body)


def _report_args(run: Run | str, approval: str | None,
                 arguments: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]]:
    if approval is None or arguments is None:
        if not isinstance(run, Run) or run.approval is None:
            raise BatonError("say which approval you act on: pass the approved Run, or "
                             "approval= and arguments=")
        approval = approval or run.approval
        arguments = run.arguments if arguments is None else arguments
    return approval, arguments


def _reported(run: Run, approval: str, status: str) -> bool:
    """Whether `run` shows the report a lost answer may have carried."""
    action = run.action or {}
    if action.get("approval") != approval:
        return False
    return action.get("status") == {"started": "started", "succeeded": "done",
                                    "failed": "failed"}[status]


def _endpoint(url: str | None, token: str | None, client: str) -> tuple[str, dict[str, str]]:
    """The API's base URL and the headers every call sends, from the arguments or
    BATON_URL and BATON_TOKEN."""
    url = url or os.environ.get("BATON_URL")
    token = token or os.environ.get("BATON_TOKEN")
    if not url or not token:
        raise BatonError(f"say where Baton is and which token to use: {client}(url, token), or "
                         "BATON_URL and BATON_TOKEN")
    base = url.rstrip("/")
    return (base if base.endswith("/api/v1") else base + "/api/v1",
            {"Authorization": f"Bearer {token}", "Accept": "application/json"})


class Baton:
    """The approval API, blocking. Use as a context manager, or call `close()`."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 timeout: float = 10.0, http: httpx.Client | None = None) -> None:
        self.base, self._headers = _endpoint(url, token, "Baton")
        self.timeout = timeout
        self.http = http or httpx.Client(timeout=timeout)

    def __enter__(self) -> Baton:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def send(self, call: Call) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                response = self.http.request(
                    call.method, self.base + call.path, json=call.json, params=call.params,
                    headers={**self._headers, **call.headers},
                    timeout=call.timeout if call.timeout is not None else self.timeout)
            except httpx.TransportError:
                if not call.retry or attempt == ATTEMPTS - 1:
                    raise
                time.sleep(_backoff(attempt))
                continue
            if response.status_code in (502, 503, 504) and call.retry and attempt < ATTEMPTS - 1:
                time.sleep(_backoff(attempt))
                continue
            return _answer(response)
        raise AssertionError("unreachable")

    # -- the endpoints ----------------------------------------------------------------------
    def flows(self) -> list[dict[str, Any]]:
        return list(self.send(Call("GET", "/flows", retry=True)))

    def start(self, flow: str, inputs: Mapping[str, Any] | None = None, *, tool: str | None = None,
              summary: str | None = None, callback_url: str | None = None,
              idempotency_key: str | None = None) -> Run:
        """Start a run. The same `idempotency_key` (for this token) gives the same run; one is
        made up when not given, so retrying after a lost connection starts one run."""
        key = idempotency_key or uuid.uuid4().hex
        return Run(self.send(_Calls.start(flow, inputs, tool, summary, callback_url, key)))

    def get(self, run: Run | str) -> Run:
        return Run(self.send(Call("GET", f"/runs/{_ref(run)}", retry=True)))

    def wait(self, run: Run | str, timeout: float = 60.0) -> Run:
        """The run once it needs you (approved: act now) or has nothing left to wait for, or
        as it is after `timeout` seconds (long polls of up to 60 s each)."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            poll = min(MAX_POLL, max(0.0, deadline - time.monotonic()))
            current = Run(self.send(Call("GET", f"/runs/{_ref(run)}/wait",
                                         params={"timeout": round(poll, 3)}, retry=True,
                                         timeout=poll + self.timeout)))
            if current.settled or time.monotonic() >= deadline:
                return current

    def report(self, run: Run | str, *, result: Any = None, error: str | None = None,
               status: str | None = None, approval: str | None = None,
               arguments: Mapping[str, Any] | None = None) -> Run:
        """Report the approved action: its `result`, or the `error` it failed with; or
        `status="started"` as you begin it."""
        approval, arguments = _report_args(run, approval, arguments)
        status = status or ("failed" if error is not None else "succeeded")
        call = _Calls.report(run, approval, arguments, status, result, error)
        try:
            return Run(self.send(call))
        except httpx.TransportError:
            pass
        current = self.get(run)  # it may have reached Baton: look before sending it again
        if _reported(current, approval, status):
            return current
        try:
            return Run(self.send(call))
        except Conflict:
            current = self.get(run)
            if _reported(current, approval, status):
                return current
            raise

    def signal(self, run: Run | str, agent: str, verdict: str, *, severity: str = "info",
               confidence: float = 1.0, summary: str = "", rationale: str = "",
               evidence: list[str] | None = None) -> Run:
        body = {"agent": agent, "verdict": verdict, "severity": severity,
                "confidence": confidence, "summary": summary, "rationale": rationale,
                "evidence": list(evidence or [])}
        return Run(self.send(Call("POST", f"/runs/{_ref(run)}/signals", json=body)))

    def cancel(self, run: Run | str, reason: str | None = None) -> Run:
        return Run(self.send(Call("POST", f"/runs/{_ref(run)}/cancel", json={"reason": reason})))

    def trace(self, run: Run | str) -> dict[str, Any]:
        return dict(self.send(Call("GET", f"/runs/{_ref(run)}/trace", retry=True)))


class AsyncBaton:
    """The approval API for asyncio code; the same methods as `Baton`, awaited."""

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 timeout: float = 10.0, http: httpx.AsyncClient | None = None) -> None:
        self.base, self._headers = _endpoint(url, token, "AsyncBaton")
        self.timeout = timeout
        self.http = http or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> AsyncBaton:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, call: Call) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                response = await self.http.request(
                    call.method, self.base + call.path, json=call.json, params=call.params,
                    headers={**self._headers, **call.headers},
                    timeout=call.timeout if call.timeout is not None else self.timeout)
            except httpx.TransportError:
                if not call.retry or attempt == ATTEMPTS - 1:
                    raise
                await asyncio.sleep(_backoff(attempt))
                continue
            if response.status_code in (502, 503, 504) and call.retry and attempt < ATTEMPTS - 1:
                await asyncio.sleep(_backoff(attempt))
                continue
            return _answer(response)
        raise AssertionError("unreachable")

    async def flows(self) -> list[dict[str, Any]]:
        return list(await self.send(Call("GET", "/flows", retry=True)))

    async def start(self, flow: str, inputs: Mapping[str, Any] | None = None, *,
                    tool: str | None = None, summary: str | None = None,
                    callback_url: str | None = None, idempotency_key: str | None = None) -> Run:
        key = idempotency_key or uuid.uuid4().hex
        return Run(await self.send(_Calls.start(flow, inputs, tool, summary, callback_url, key)))

    async def get(self, run: Run | str) -> Run:
        return Run(await self.send(Call("GET", f"/runs/{_ref(run)}", retry=True)))

    async def wait(self, run: Run | str, timeout: float = 60.0) -> Run:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            poll = min(MAX_POLL, max(0.0, deadline - loop.time()))
            current = Run(await self.send(Call("GET", f"/runs/{_ref(run)}/wait",
                                               params={"timeout": round(poll, 3)}, retry=True,
                                               timeout=poll + self.timeout)))
            if current.settled or loop.time() >= deadline:
                return current

    async def report(self, run: Run | str, *, result: Any = None, error: str | None = None,
                     status: str | None = None, approval: str | None = None,
                     arguments: Mapping[str, Any] | None = None) -> Run:
        approval, arguments = _report_args(run, approval, arguments)
        status = status or ("failed" if error is not None else "succeeded")
        call = _Calls.report(run, approval, arguments, status, result, error)
        try:
            return Run(await self.send(call))
        except httpx.TransportError:
            pass
        current = await self.get(run)  # it may have reached Baton: look before sending again
        if _reported(current, approval, status):
            return current
        try:
            return Run(await self.send(call))
        except Conflict:
            current = await self.get(run)
            if _reported(current, approval, status):
                return current
            raise

    async def signal(self, run: Run | str, agent: str, verdict: str, *, severity: str = "info",
                     confidence: float = 1.0, summary: str = "", rationale: str = "",
                     evidence: list[str] | None = None) -> Run:
        body = {"agent": agent, "verdict": verdict, "severity": severity,
                "confidence": confidence, "summary": summary, "rationale": rationale,
                "evidence": list(evidence or [])}
        return Run(await self.send(Call("POST", f"/runs/{_ref(run)}/signals", json=body)))

    async def cancel(self, run: Run | str, reason: str | None = None) -> Run:
        return Run(await self.send(Call("POST", f"/runs/{_ref(run)}/cancel",
                                        json={"reason": reason})))

    async def trace(self, run: Run | str) -> dict[str, Any]:
        return dict(await self.send(Call("GET", f"/runs/{_ref(run)}/trace", retry=True)))
