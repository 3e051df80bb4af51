"""`@require_approval`: put a function behind a Baton flow.

Calling the wrapped function starts a run of `flow` with the function's name as the tool and
its arguments as the inputs (those the flow declares), waits for people to decide, then runs
the function once with the approved arguments (an approver may have edited them) and reports
its result or its exception. A rejection raises `Rejected` (who, why); no decision in time
raises `TimedOut`.

With `key=`, a function of the call's arguments giving an idempotency key (an invoice
number, a ticket id), a retried call finds the run the first call started: it waits for the
same decision, and never runs the function a second time (it returns the first call's
reported result, or raises).
"""

from __future__ import annotations

import functools
import inspect
import json
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from baton_client.client import AsyncBaton, Baton
from baton_client.errors import BatonError, Conflict, Rejected, RunFailed, TimedOut
from baton_client.runs import Run

F = TypeVar("F", bound=Callable[..., Any])
OnTimeout = Literal["reject", "keep"]
IN_FLIGHT = ("the approved action was started by an earlier call and may have run: it is not "
             "run again (report its result, or a person settles it in Slack)")


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _inputs(bound: inspect.BoundArguments, declared: set[str]) -> dict[str, Any]:
    return {name: _jsonable(value) for name, value in bound.arguments.items()
            if name in declared and value is not None}


def _apply(bound: inspect.BoundArguments, approved: dict[str, Any]) -> None:
    """Call with the approved arguments; a whole number approved as 18000.0 for an int
    parameter stays an int."""
    for name, value in approved.items():
        if name not in bound.arguments:
            continue
        given = bound.arguments[name]
        if (isinstance(given, int) and not isinstance(given, bool) and isinstance(value, float)
                and value.is_integer()):
            value = int(value)
        bound.arguments[name] = value


def _refusal(run: Run) -> BatonError | None:
    """The exception for a run that will not be approved, or None."""
    state = run.state
    if state == "rejected":
        return Rejected(run.id, run.deciders, run.reason)
    if state == "timed_out":
        return TimedOut(run.id, run.reason)
    if state == "cancelled":
        return Rejected(run.id, [], run.reason)
    if state == "failed":
        return RunFailed(run.id, run.reason)
    return None


def _earlier(run: Run) -> Any:
    """A run an earlier call (same key) took through: its result, or why it failed."""
    action = run.action or {}
    if action.get("status") == "done":
        return action.get("result")
    if action.get("status") == "failed":
        raise RunFailed(run.id, action.get("error"))
    if action.get("status") == "unknown":
        raise RunFailed(run.id, "the action's outcome is unknown; a person settles it in Slack")
    raise RunFailed(run.id, f"the run finished without the action ({run.status})")


class _Settings:
    def __init__(self, fn: Callable[..., Any], flow: str, timeout: float, on_timeout: OnTimeout,
                 tool: str | None, summary: str | Callable[..., str] | None,
                 key: Callable[..., str] | None, callback_url: str | None,
                 client: Any) -> None:
        self.fn = fn
        self.signature = inspect.signature(fn)
        self.flow = flow
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.tool = tool or fn.__name__
        self.summary = summary
        self.key = key
        self.callback_url = callback_url
        self.client = client
        self.declared: set[str] | None = None

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound

    def idempotency_key(self, bound: inspect.BoundArguments) -> str:
        if self.key is None:
            return uuid.uuid4().hex
        return f"{self.tool}:{self.key(**bound.arguments)}"

    def summary_of(self, bound: inspect.BoundArguments) -> str | None:
        if callable(self.summary):
            return str(self.summary(**bound.arguments))
        return self.summary

    def learn(self, flows: list[dict[str, Any]]) -> set[str]:
        for flow in flows:
            if flow["name"] == self.flow:
                self.declared = set(flow["inputs"])
                return self.declared
        raise BatonError(f"this token may not start {self.flow!r} (its flows: "
                         + (", ".join(f["name"] for f in flows) or "none") + ")")


def require_approval(flow: str, *, timeout: float = 3600.0, on_timeout: OnTimeout = "reject",
                     tool: str | None = None, summary: str | Callable[..., str] | None = None,
                     key: Callable[..., str] | None = None, callback_url: str | None = None,
                     client: Baton | AsyncBaton | None = None) -> Callable[[F], F]:
    """Wrap a function (or a coroutine function) so that it runs only once people approve.

    `timeout`: seconds the call waits for a decision; then, with `on_timeout="reject"` (the
    default) the run is cancelled, with `"keep"` it stays open (a retried call with the same
    `key` waits on). Either way `TimedOut` is raised. `client`: a `Baton` (or, for coroutine
    functions, an `AsyncBaton`); by default one is made from BATON_URL and BATON_TOKEN.
    """
    if on_timeout not in ("reject", "keep"):
        raise ValueError("on_timeout is 'reject' or 'keep'")

    def wrap(fn: F) -> F:
        settings = _Settings(fn, flow, timeout, on_timeout, tool, summary, key, callback_url, client)
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def call_async(*args: Any, **kwargs: Any) -> Any:
                return await _ask_async(settings, settings.bind(args, kwargs))

            return call_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            return _ask(settings, settings.bind(args, kwargs))

        return call  # type: ignore[return-value]

    return wrap


# -- blocking -------------------------------------------------------------------------------------
def _ask(settings: _Settings, bound: inspect.BoundArguments) -> Any:
    baton = settings.client or Baton()
    try:
        declared = settings.declared or settings.learn(baton.flows())
        run = baton.start(settings.flow, _inputs(bound, declared), tool=settings.tool,
                          summary=settings.summary_of(bound), callback_url=settings.callback_url,
                          idempotency_key=settings.idempotency_key(bound))
        run = baton.wait(run, settings.timeout)
        if not run.settled:
            run = _give_up(baton, settings, run)
        return _act(baton, settings, bound, run)
    finally:
        if settings.client is None:
            baton.close()


def _give_up(baton: Baton, settings: _Settings, run: Run) -> Run:
    if settings.on_timeout == "keep":
        raise TimedOut(run.id, f"no decision within {settings.timeout:g}s; the run stays open")
    try:
        run = baton.cancel(run, f"no decision within {settings.timeout:g}s: the caller gave up")
    except Conflict:  # it finished meanwhile
        run = baton.get(run)
        if run.settled:
            return run
    raise TimedOut(run.id, f"no decision within {settings.timeout:g}s; the run was cancelled")


def _act(baton: Baton, settings: _Settings, bound: inspect.BoundArguments, run: Run) -> Any:
    refusal = _refusal(run)
    if refusal is not None:
        raise refusal
    if not run.approved:
        return _earlier(run)
    if (run.action or {}).get("status") == "started":
        raise RunFailed(run.id, IN_FLIGHT)
    try:
        baton.report(run, status="started")
    except Conflict:
        raise RunFailed(run.id, IN_FLIGHT) from None
    _apply(bound, run.arguments)
    try:
        result = settings.fn(*bound.args, **bound.kwargs)
    except Exception as exc:
        baton.report(run, error=f"{type(exc).__name__}: {exc}")
        raise
    baton.report(run, result=_jsonable(result))
    return result


# -- asyncio --------------------------------------------------------------------------------------
async def _ask_async(settings: _Settings, bound: inspect.BoundArguments) -> Any:
    baton = settings.client or AsyncBaton()
    try:
        declared = settings.declared or settings.learn(await baton.flows())
        run = await baton.start(settings.flow, _inputs(bound, declared), tool=settings.tool,
                                summary=settings.summary_of(bound),
                                callback_url=settings.callback_url,
                                idempotency_key=settings.idempotency_key(bound))
        run = await baton.wait(run, settings.timeout)
        if not run.settled:
            run = await _give_up_async(baton, settings, run)
        return await _act_async(baton, settings, bound, run)
    finally:
        if settings.client is None:
            await baton.aclose()


async def _give_up_async(baton: AsyncBaton, settings: _Settings, run: Run) -> Run:
    if settings.on_timeout == "keep":
        raise TimedOut(run.id, f"no decision within {settings.timeout:g}s; the run stays open")
    try:
        run = await baton.cancel(run, f"no decision within {settings.timeout:g}s: the caller "
                                      "gave up")
    except Conflict:
        run = await baton.get(run)
        if run.settled:
            return run
    raise TimedOut(run.id, f"no decision within {settings.timeout:g}s; the run was cancelled")


async def _act_async(baton: AsyncBaton, settings: _Settings, bound: inspect.BoundArguments,
                     run: Run) -> Any:
    refusal = _refusal(run)
    if refusal is not None:
        raise refusal
    if not run.approved:
        return _earlier(run)
    if (run.action or {}).get("status") == "started":
        raise RunFailed(run.id, IN_FLIGHT)
    try:
        await baton.report(run, status="started")
    except Conflict:
        raise RunFailed(run.id, IN_FLIGHT) from None
    _apply(bound, run.arguments)
    try:
        result = await settings.fn(*bound.args, **bound.kwargs)
    except Exception as exc:
        await baton.report(run, error=f"{type(exc).__name__}: {exc}")
        raise
    await baton.report(run, result=_jsonable(result))
    return result
