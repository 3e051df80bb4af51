"""Baton approves a LangGraph agent's tool calls (`pip install 'baton-client[langgraph]'`).

    from langchain_core.tools import tool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.prebuilt import ToolNode
    from baton_client import Baton
    from baton_client.langgraph import BatonApprovals

    approvals = BatonApprovals(Baton())               # BATON_URL, BATON_TOKEN

    @approvals.tool(flow="vendor-payment-api")
    @tool
    def pay_vendor(vendor: str, amount: float, invoice: str) -> str:
        '''Pay a vendor's invoice.'''
        return bank.pay(vendor, amount, invoice)

    graph = ...  # a model node bound to [pay_vendor], ToolNode([pay_vendor]), a checkpointer
    result = approvals.invoke(graph, {"messages": [...]}, {"configurable": {"thread_id": "t-1"}})

A call of the gated tool starts a Baton run of the flow (the tool's name, the arguments the
flow declares) and, while people decide, stops the graph with `interrupt()` at a checkpoint:
no thread waits. `approvals.invoke` (or `resume`, from any process that has the
checkpointer) waits for the decisions of the runs the graph stopped for, then resumes it.
The tool reads its run from Baton again, runs the wrapped tool once with the approved
arguments (an approver may have lowered the amount) and reports its result or exception. A
rejection reaches the model as the tool's error message, naming who rejected it and why
(or, with `on_denied="raise"`, raises `Rejected` out of the graph).

Which run a call waits for is Baton's, not the resume value's: the run's Idempotency-Key
is derived from the graph's thread, the task and the tool call id, so a re-executed node,
a resume from another process or a resume value meant for another call finds the same run,
never asks people twice, and never runs the tool on another call's approval. Several gated
calls in one step (a ToolNode given two tool calls) are all asked at once.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Annotated, Any

try:
    from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool, ToolException
    from langchain_core.tools import tool as as_tool
    from langgraph.config import get_config
    from langgraph.types import Command, Interrupt, interrupt
    from pydantic import BaseModel, create_model
except ImportError as missing:  # pragma: no cover - depends on what the user installed
    raise ImportError("baton_client.langgraph needs LangGraph: "
                      "pip install 'baton-client[langgraph]'") from missing

from baton_client.approval import IN_FLIGHT
from baton_client.client import Baton
from baton_client.errors import BatonError, Conflict, InvalidRequest, RunFailed, TimedOut
from baton_client.gated import (
    GatedTool,
    OnDenied,
    OnTimeout,
    approved_arguments,
    declared_inputs,
    earlier,
    for_the_model,
    in_flight,
    inputs_of,
    refusal,
    result_of,
)
from baton_client.runs import Run

__all__ = ["BatonApprovals", "NotApproved"]

KEY = "baton"  # the interrupt value's key that marks a call waiting for Baton
CALL_ID = "baton_tool_call_id"  # the injected argument carrying the tool call's id


class NotApproved(ToolException):
    """Baton did not approve the call (rejected, nobody decided, or an invalid request); the
    tool's error message to the model says who and why. `cause` is the client's exception."""

    def __init__(self, message: str, cause: BatonError | None = None) -> None:
        super().__init__(message)
        self.cause = cause


def _tell_model(error: ToolException) -> str:
    return str(error)


def _call_key(tool_call_id: str) -> str:
    """The call's Idempotency-Key: the same for every execution of this call in this graph
    thread and step, whichever process runs it."""
    configurable = get_config().get("configurable", {})
    where = "\0".join((str(configurable.get("thread_id", "")),
                       str(configurable.get("checkpoint_ns", "")), tool_call_id))
    return "langgraph:" + hashlib.sha256(where.encode()).hexdigest()[:40]


class BatonApprovals:
    """The tools Baton approves, and the driver that waits for people on their interrupts.

    `timeout`: seconds to wait for people on one call; then, with `on_timeout="reject"` (the
    default) the Baton run is cancelled and the tool tells the model nobody decided, with
    `"keep"` the run stays open and `TimedOut` is raised (call `resume` to wait on).
    `on_denied`: `"tell_model"` (the default) or `"raise"` (`Rejected` / `TimedOut` out of
    the graph's invoke).
    """

    def __init__(self, client: Baton | None = None, *, timeout: float = 3600.0,
                 on_timeout: OnTimeout = "reject", on_denied: OnDenied = "tell_model") -> None:
        if on_timeout not in ("reject", "keep"):
            raise ValueError("on_timeout is 'reject' or 'keep'")
        if on_denied not in ("tell_model", "raise"):
            raise ValueError("on_denied is 'tell_model' or 'raise'")
        self._client = client
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.on_denied = on_denied
        self._declared: dict[str, set[str]] = {}

    @property
    def client(self) -> Baton:
        if self._client is None:
            self._client = Baton()
        return self._client

    # -- the tools ----------------------------------------------------------------------------
    def tool(self, tool: BaseTool | Callable[..., Any] | None = None, *, flow: str,
             summary: str | Callable[..., str] | None = None) -> Any:
        """A tool (a LangChain tool, or a function made into one) whose calls Baton approves
        with `flow`: same name, description and arguments for the model."""

        def make(tool: BaseTool | Callable[..., Any]) -> BaseTool:
            original = tool if isinstance(tool, BaseTool) else as_tool(tool)
            schema = original.args_schema
            if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
                raise TypeError(f"{original.name}: Baton needs the tool's arguments as a pydantic "
                                "model (make it with @tool or StructuredTool.from_function)")
            # Its own errors must reach us, to be reported as a failed action.
            inner = original.model_copy(update={"handle_tool_error": False})
            gated = GatedTool(flow, original.name, summary)
            # The model does not see the injected id; LangChain fills it from the tool call.
            with_call_id = create_model(schema.__name__, __base__=schema,
                                        **{CALL_ID: (Annotated[str, InjectedToolCallId], ...)})

            def call(**arguments: Any) -> Any:
                call_id = arguments.pop(CALL_ID)
                return self._perform(gated, inner, call_id, arguments)

            return StructuredTool(name=original.name, description=original.description,
                                  args_schema=with_call_id, func=call,
                                  handle_tool_error=_tell_model,
                                  response_format=original.response_format)

        return make(tool) if tool is not None else make

    # -- the driver ---------------------------------------------------------------------------
    def invoke(self, graph: Any, input: Any, config: dict[str, Any], **options: Any) -> Any:
        """`graph.invoke(input, config)`, with Baton deciding its tools' interrupts until the
        graph finishes (or stops at an interrupt that is not Baton's: that one is yours)."""
        result = graph.invoke(input, config, **options)
        return self._drive(graph, result, config, **options)

    def resume(self, graph: Any, config: dict[str, Any], **options: Any) -> Any:
        """Go on with a graph stopped at Baton's interrupts (after `TimedOut` with
        `on_timeout="keep"`, or from another process sharing the checkpointer)."""
        return self._drive(graph, None, config, **options)

    def _drive(self, graph: Any, result: Any, config: dict[str, Any], **options: Any) -> Any:
        while True:
            pending = tuple(graph.get_state(config).interrupts)
            if not pending or any(not self.is_request(i) for i in pending):
                return result if result is not None else graph.get_state(config).values
            # Every run of this step was started before the graph stopped: people see them
            # together, and the waits overlap.
            answers = {i.id: self._wait(str(i.value[KEY]["run"])) for i in pending}
            result = graph.invoke(Command(resume=answers), config, **options)

    @staticmethod
    def is_request(pending: Interrupt) -> bool:
        """Whether an interrupt is a gated tool waiting for Baton."""
        value = pending.value
        return isinstance(value, dict) and isinstance(value.get(KEY), dict) \
            and "run" in value[KEY]

    def _wait(self, run_id: str) -> dict[str, Any]:
        """Wait for people on a run; give up after `timeout` as `on_timeout` says. The resume
        value only wakes the tool: it reads the run from Baton itself."""
        baton = self.client
        run = baton.wait(run_id, self.timeout)
        if run.settled:
            return {"run": run.id}
        if self.on_timeout == "keep":
            raise TimedOut(run.id, f"no decision within {self.timeout:g}s; the run stays open")
        with contextlib.suppress(Conflict):  # decided meanwhile: the tool reads which way
            baton.cancel(run, f"no decision within {self.timeout:g}s: the agent gave up")
        return {"run": run.id}

    # -- in the graph -------------------------------------------------------------------------
    def _declared_inputs(self, flow: str) -> set[str]:
        if flow not in self._declared:
            self._declared[flow] = declared_inputs(self.client.flows(), flow)
        return self._declared[flow]

    def _perform(self, gated: GatedTool, inner: BaseTool, call_id: str,
                 arguments: dict[str, Any]) -> Any:
        """The tool's call inside the graph: ask Baton (or find the run asked before), stop
        the graph until people decide, then run once as approved."""
        inputs = inputs_of(arguments, self._declared_inputs(gated.flow))
        baton = self.client
        try:
            run = baton.start(gated.flow, inputs, tool=gated.name,
                              summary=gated.summary_of(arguments),
                              idempotency_key=_call_key(call_id))
        except InvalidRequest as bad:
            raise NotApproved(f"Baton refused {gated.name}: {bad.detail}", bad) from None
        while not run.settled:
            # A resume value (whichever call it was meant for) only says "look again".
            interrupt({KEY: {"run": run.id, "flow": gated.flow, "tool": gated.name,
                             "inputs": inputs}})
            run = baton.get(run)
        denied = refusal(run)
        if denied is not None:
            self._deny(gated, run, denied)
        if not run.approved:
            return earlier(run)  # a re-executed step: the action was already performed
        started = in_flight(run)
        if started is not None:
            raise started
        try:
            baton.report(run, status="started")
        except Conflict:
            raise RunFailed(run.id, IN_FLIGHT) from None
        approved = approved_arguments(arguments, run)
        try:
            result = inner.invoke(approved)
        except Exception as exc:
            baton.report(run, error=f"{type(exc).__name__}: {exc}")
            raise
        baton.report(run, result=result_of(result))
        return result

    def _deny(self, gated: GatedTool, run: Run, error: BatonError) -> None:
        if self.on_denied == "raise":
            raise error
        if run.state == "cancelled":  # by a person with /baton stop, or by a driver giving up
            because = f": {run.reason}" if run.reason else ""
            raise NotApproved(f"{gated.name} was not approved: {run.id} was cancelled{because}",
                              error)
        raise NotApproved(for_the_model(gated.name, error), error)
