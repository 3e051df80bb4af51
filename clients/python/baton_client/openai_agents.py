"""Baton decides the OpenAI Agents SDK's tool approvals (`pip install 'baton-client[openai-agents]'`).

    from agents import Agent
    from baton_client import AsyncBaton
    from baton_client.openai_agents import BatonApprovals

    approvals = BatonApprovals(AsyncBaton())          # BATON_URL, BATON_TOKEN

    @approvals.tool(flow="vendor-payment-api")
    def pay_vendor(vendor: str, amount: float, invoice: str) -> str:
        '''Pay a vendor's invoice.'''
        return bank.pay(vendor, amount, invoice)

    agent = Agent(name="Billing agent", instructions="...", tools=[pay_vendor])
    result = await approvals.run(agent, "Pay ACME's invoice INV-4471")

`approvals.tool` is `function_tool(needs_approval=True)`: the model's call interrupts the
agent's run. `approvals.run` (or `resolve` on a result you have) turns each interruption
into a Baton run, waits for people to decide in Slack, and approves or rejects it on the
run's state before resuming. An approved call runs once, with the arguments people approved
(an approver may have lowered the amount), and its result or exception is reported to
Baton. A rejection reaches the model as the tool's output, naming who rejected it and why.

The tool never runs on an approval given anywhere but in Baton: a call approved on the
`RunState` directly (or with `always_approve`) asks Baton itself when it is invoked, and
waits.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import uuid
from collections.abc import Callable
from typing import Any

try:
    from agents import Agent, Runner, function_tool
    from agents.items import ToolApprovalItem
    from agents.result import RunResult
    from agents.run_state import RunState
    from agents.tool import FunctionTool
    from agents.tool_context import ToolContext
except ImportError as missing:  # pragma: no cover - depends on what the user installed
    raise ImportError("baton_client.openai_agents needs the OpenAI Agents SDK: "
                      "pip install 'baton-client[openai-agents]'") from missing

from baton_client.approval import IN_FLIGHT
from baton_client.client import AsyncBaton
from baton_client.errors import BatonError, Conflict, InvalidRequest, RunFailed, TimedOut
from baton_client.gated import (
    GatedTool,
    OnDenied,
    OnTimeout,
    approved_arguments,
    asked_for,
    declared_inputs,
    earlier,
    for_the_model,
    in_flight,
    inputs_of,
    refusal,
    result_of,
)
from baton_client.runs import Run

__all__ = ["BatonApprovals"]


class BatonApprovals:
    """The tools Baton approves, and the loop that asks Baton about their interruptions.

    `timeout`: seconds to wait for people on one call; then, with `on_timeout="reject"` (the
    default) the Baton run is cancelled and the model told nobody decided, with `"keep"` the
    run stays open and `TimedOut` is raised (call `resolve` again to wait on). `on_denied`:
    `"tell_model"` (the default) rejects the call on the run's state with who and why, so the
    agent carries on; `"raise"` raises `Rejected` / `TimedOut` from `run` and `resolve`.
    Keep one `BatonApprovals` across an interruption and its resume (one process).
    """

    def __init__(self, client: AsyncBaton | None = None, *, timeout: float = 3600.0,
                 on_timeout: OnTimeout = "reject", on_denied: OnDenied = "tell_model") -> None:
        if on_timeout not in ("reject", "keep"):
            raise ValueError("on_timeout is 'reject' or 'keep'")
        if on_denied not in ("tell_model", "raise"):
            raise ValueError("on_denied is 'tell_model' or 'raise'")
        self._client = client
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.on_denied = on_denied
        self._tools: dict[str, GatedTool] = {}
        self._declared: dict[str, set[str]] = {}
        self._keys: dict[str, str] = {}  # tool call id -> the Idempotency-Key that asked it
        self._approved: dict[str, Run] = {}  # tool call id -> its approved run, until it runs

    @property
    def client(self) -> AsyncBaton:
        if self._client is None:
            self._client = AsyncBaton()
        return self._client

    # -- the tools ----------------------------------------------------------------------------
    def tool(self, fn: Callable[..., Any] | None = None, *, flow: str,
             summary: str | Callable[..., str] | None = None,
             **options: Any) -> Any:
        """`@function_tool` whose calls Baton approves with `flow`; `options` go to
        `function_tool` (`name_override`, `description_override`, ...). `summary`: text, or
        a function of the call's arguments, shown to approvers."""
        if "needs_approval" in options:
            raise TypeError("Baton decides every call of this tool: drop needs_approval (the "
                            "flow's own `when:` says which calls need a person)")

        def make(fn: Callable[..., Any]) -> FunctionTool:
            gated = GatedTool(flow, options.get("name_override") or fn.__name__, summary)
            signature = inspect.signature(fn)

            async def invoke(ctx: ToolContext[Any], *args: Any, **kwargs: Any) -> Any:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                return await self._perform(gated, fn, ctx, bound)

            functools.update_wrapper(invoke, fn)
            context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        annotation=ToolContext[Any])
            invoke.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=[context, *signature.parameters.values()])
            invoke.__annotations__ = {"ctx": ToolContext[Any], **fn.__annotations__}
            made = function_tool(invoke, needs_approval=True, **options)
            self._tools[made.name] = gated
            return made

        return make(fn) if fn is not None else make

    # -- the loop -----------------------------------------------------------------------------
    async def run(self, agent: Agent[Any], input: Any, **options: Any) -> RunResult:
        """`Runner.run(agent, input, **options)`, with Baton deciding its interruptions."""
        result = await Runner.run(agent, input, **options)
        return await self.resolve(agent, result, **options)

    async def resolve(self, agent: Agent[Any], result: RunResult, **options: Any) -> RunResult:
        """Ask Baton about each interruption of `result`, then resume the run, until it
        finishes. A result interrupted also by tools Baton does not approve is returned as
        it is: decide those on `result.to_state()` yourself, and `decide` these."""
        options.pop("context", None)  # a resumed run has its state's context
        while result.interruptions:
            if any(self._gated(item) is None for item in result.interruptions):
                return result
            state = result.to_state()
            # All at once: people see every call of this turn together, not one by one.
            decided = await asyncio.gather(*(self.decide(state, item)
                                             for item in result.interruptions),
                                           return_exceptions=True)
            failed = next((d for d in decided if isinstance(d, BaseException)), None)
            if failed is not None:
                raise failed
            result = await Runner.run(agent, state, **options)
        return result

    async def decide(self, state: RunState[Any, Any], item: ToolApprovalItem) -> Run | None:
        """Ask Baton about one interrupted call and approve or reject it on `state`: the
        Baton run once it is decided (None when Baton refused the request as invalid)."""
        gated = self._gated(item)
        if gated is None:
            raise BatonError(f"{item.name!r} is not a tool these approvals put behind a flow")
        call_id = str(item.call_id)
        try:
            arguments = json.loads(item.arguments or "{}")
        except ValueError:
            state.reject(item, rejection_message=f"{gated.name}: the arguments are not JSON")
            return None
        if not isinstance(arguments, dict):
            state.reject(item, rejection_message=f"{gated.name}: the arguments are not an object")
            return None
        try:
            run = await self._ask(gated, call_id, arguments)
        except InvalidRequest as bad:
            self._keys.pop(call_id, None)
            state.reject(item, rejection_message=f"Baton refused {gated.name}: {bad.detail}")
            return None
        except TimedOut as late:
            if self.on_timeout == "keep" or self.on_denied == "raise":
                raise
            self._keys.pop(call_id, None)
            state.reject(item, rejection_message=for_the_model(gated.name, late))
            return None
        denied = refusal(run)
        if denied is not None:
            self._keys.pop(call_id, None)
            if self.on_denied == "raise":
                raise denied
            state.reject(item, rejection_message=for_the_model(gated.name, denied))
            return run
        self._approved[call_id] = run
        state.approve(item)
        return run

    # -- asking and acting --------------------------------------------------------------------
    def _gated(self, item: ToolApprovalItem) -> GatedTool | None:
        return self._tools.get(str(item.tool_name or item.name))

    async def _declared_inputs(self, flow: str) -> set[str]:
        if flow not in self._declared:
            self._declared[flow] = declared_inputs(await self.client.flows(), flow)
        return self._declared[flow]

    async def _ask(self, gated: GatedTool, call_id: str, arguments: dict[str, Any]) -> Run:
        """Start (or find again: the key is kept per call) the call's run and wait until it
        is decided, giving up after `timeout` as `on_timeout` says."""
        inputs = inputs_of(arguments, await self._declared_inputs(gated.flow))
        key = self._keys.setdefault(call_id, f"{gated.name}:{uuid.uuid4().hex}")
        baton = self.client
        run = await baton.start(gated.flow, inputs, tool=gated.name,
                                summary=gated.summary_of(arguments), idempotency_key=key)
        run = await baton.wait(run, self.timeout)
        if run.settled:
            return run
        if self.on_timeout == "keep":
            raise TimedOut(run.id, f"no decision within {self.timeout:g}s; the run stays open")
        try:
            run = await baton.cancel(run, f"no decision within {self.timeout:g}s: the agent "
                                          "gave up")
        except Conflict:  # decided meanwhile
            run = await baton.get(run)
            if run.settled:
                return run
        raise TimedOut(run.id, f"no decision within {self.timeout:g}s; the run was cancelled")

    async def _perform(self, gated: GatedTool, fn: Callable[..., Any], ctx: ToolContext[Any],
                       bound: inspect.BoundArguments) -> Any:
        """The tool's invocation: run the function once with what Baton approved, and
        report its result or exception."""
        call_id = str(ctx.tool_call_id)
        given = dict(bound.arguments)
        inputs = inputs_of(given, await self._declared_inputs(gated.flow))
        run = self._approved.pop(call_id, None)
        if run is None or asked_for(run, gated, inputs) is not None:
            # Approved somewhere else than Baton (on the RunState directly, always_approve):
            # ask Baton now, and wait.
            run = await self._ask(gated, call_id, given)
        self._keys.pop(call_id, None)
        denied = refusal(run)
        if denied is not None:
            raise denied
        if not run.approved:
            return earlier(run)
        started = in_flight(run)
        if started is not None:
            raise started
        baton = self.client
        try:
            await baton.report(run, status="started")
        except Conflict:
            raise RunFailed(run.id, IN_FLIGHT) from None
        bound = bound.signature.bind(**approved_arguments(given, run))
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(*bound.args, **bound.kwargs)
            else:
                result = await asyncio.to_thread(fn, *bound.args, **bound.kwargs)
        except Exception as exc:
            await baton.report(run, error=f"{type(exc).__name__}: {exc}")
            raise
        await baton.report(run, result=result_of(result))
        return result
