"""The MCP tools, on the SDK's low-level `Server`: each tool's schema comes from a pydantic
model of its arguments, and its answer is built here (text for the model, structured
content for the application, `isError` for a refusal), so every refusal reads as Baton
words it, never as a protocol error or a crash of the server.

| tool | does |
|---|---|
| `list_flows()` | the flows this token may start, with their actions and arguments |
| `request_approval(flow, action, arguments, summary)` | starts a run, waits up to the bounded wait, answers |
| `wait_for_approval(run, timeout)` | waits again (as often as needed) |
| `report_result(run, approval, arguments, result \\| error)` | closes the approved action, once |
| `get_run(run)` | status and the trace's highlights |

A wait reports progress (who can decide) every few seconds to clients that ask for it,
and never longer than the bounded wait (`BATON_MCP_WAIT`, 45 s by default: under the 60 s
many clients give a tool call). Clients with MCP's task mechanism would not need the
polling; SDK 2.3 implements no tasks (docs/mcp.md), so the polling tools serve everyone.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from mcp.server import Server, ServerRequestContext
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.api.limits import MAX_BODY, MAX_DEPTH, too_deep
from bot.blocks import hide_paths
from bot.mcp import answers
from bot.mcp.backends import Approvals
from orchestrator.approval_views import MAX_ERROR, MAX_SUMMARY, ReportResult, RunView, StartRun
from orchestrator.errors import (
    BatonError,
    Conflict,
    FlowError,
    Forbidden,
    InputError,
    NotFound,
    Unauthorized,
    Unavailable,
)

log = structlog.get_logger("baton.mcp")

PROGRESS_EVERY = 10.0  # seconds between progress notifications while a tool waits
MAX_WAITS = 16  # waits one token may have open at once (a client spamming waits is refused)
INSTRUCTIONS = (
    "Baton asks people in Slack before you act. When a flow covers an action you are about to "
    "take (list_flows says which), call request_approval first and act only on an approval: "
    "perform the action once, with exactly the approved arguments (a person may have changed "
    "them), then call report_result. While the answer is pending, call wait_for_approval. "
    "Never perform the action when the answer is rejected, timed_out, cancelled or failed; "
    "tell the user the reason instead.")


# -- the tools' arguments -----------------------------------------------------------------------
class Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoArguments(Arguments):
    pass


RUN = Field(min_length=1, max_length=30, description="the run's id, as request_approval "
                                                     "returned it, e.g. R-42")


class RequestApproval(Arguments):
    flow: str = Field(min_length=1, max_length=100,
                      description="the flow that covers the action: one list_flows shows")
    action: str = Field(min_length=1, max_length=100,
                        description="what you want to do: one of the flow's `actions` "
                                    "(list_flows), e.g. run_command")
    arguments: dict[str, Any] = Field(
        max_length=200, description="the action's arguments, named as the flow lists them "
                                    "(list_flows): exactly what you intend to act with. People see "
                                    "them and may change them before they approve")
    summary: str = Field(min_length=1, max_length=MAX_SUMMARY,
                         description="for the people deciding, in plain text: what you want to "
                                     "do and why, in one or two sentences")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="optional: your own key for this request (a ticket or commit id); asking "
                    "again with the same key returns the same run instead of a second request")


class WaitForApproval(Arguments):
    run: str = RUN
    timeout: float | None = Field(default=None, ge=0, le=60,
                                  description="seconds to wait at most before answering "
                                              "`pending` (default and most: the server's wait)")


class ReportOutcome(Arguments):
    run: str = RUN
    approval: str = Field(min_length=1, max_length=100,
                          description="the `approval` id of the approved answer")
    arguments: dict[str, Any] = Field(
        max_length=200, description="the arguments you acted with: the approved `arguments`, "
                                    "exactly")
    result: Any = Field(default=None, description="what the action returned (any JSON: an "
                                                  "id, the command's output); the trace keeps "
                                                  "its first 4,000 characters")
    error: str | None = Field(default=None, min_length=1, max_length=MAX_ERROR,
                              description="instead of result: why the action failed (the run "
                                          "then fails)")


class ReadRun(Arguments):
    run: str = RUN


# -- answering ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Asker:
    """Who calls (a key for per-caller limits, never a secret) and the backend for them."""

    key: str
    approvals: Approvals


Progress = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass
class Call:
    asker: Asker
    wait_s: float
    progress: Progress
    waits: Waits

    @property
    def approvals(self) -> Approvals:
        return self.asker.approvals


@dataclass
class Waits:
    """Open waits per caller: a client that opens more than `limit` at once is refused (each
    one costs a database read a second and a wake-up registration)."""

    limit: int = MAX_WAITS
    open: dict[str, int] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        if self.open.get(key, 0) >= self.limit:
            raise Unavailable(f"{self.limit} waits of yours are open already; wait for one of "
                              "them to answer instead of opening more")
        self.open[key] = self.open.get(key, 0) + 1
        try:
            yield
        finally:
            self.open[key] -= 1
            if not self.open[key]:
                del self.open[key]


def _size_problem(name: str, value: Any) -> str | None:
    if too_deep(value):
        return f"{name}: nested more than {MAX_DEPTH} deep"
    if len(json.dumps(value, default=str)) > MAX_BODY:
        return f"{name}: over {MAX_BODY:,} bytes as JSON"
    return None


def _fit(**values: Any) -> None:
    """What the HTTP API refuses before it reads a body, refused here for every transport."""
    problems = [(name, found) for name, value in values.items()
                if (found := _size_problem(name, value)) is not None]
    if problems:
        raise InputError("; ".join(p for _, p in problems), fields=problems)


async def _waited(call: Call, run: str, timeout: float) -> RunView:
    """The run once it needs the caller or is over, or as it is after `timeout` seconds,
    telling the client who can decide every PROGRESS_EVERY seconds meanwhile."""
    started = time.monotonic()
    async with call.waits.slot(call.asker.key):
        while True:
            left = timeout - (time.monotonic() - started)
            view = await call.approvals.wait(run, max(0.0, min(PROGRESS_EVERY, left)))
            waited = time.monotonic() - started
            if view.settled or waited >= timeout:
                return view
            gate = next((g for g in view.gates if g.status == "open"), None)
            people = ", ".join(p.name for p in gate.can_decide) if gate else ""
            await call.progress(round(waited, 1), timeout,
                                f"{view.id}: waiting for {people or 'Baton'} to decide")


async def list_flows(call: Call, args: NoArguments) -> BaseModel:
    return answers.flow_listing(await call.approvals.flows())


async def request_approval(call: Call, args: RequestApproval) -> BaseModel:
    _fit(arguments=args.arguments)
    view = await call.approvals.start(StartRun(flow=args.flow, inputs=args.arguments,
                                               tool=args.action, summary=args.summary),
                                      args.idempotency_key)
    if not view.settled and call.wait_s > 0:
        view = await _waited(call, view.id, call.wait_s)
    return answers.approval_answer(view, call.wait_s)


async def wait_for_approval(call: Call, args: WaitForApproval) -> BaseModel:
    timeout = call.wait_s if args.timeout is None else min(args.timeout, call.wait_s)
    return answers.approval_answer(await _waited(call, args.run, timeout), call.wait_s)


async def report_result(call: Call, args: ReportOutcome) -> BaseModel:
    if args.error is not None and args.result is not None:
        raise InputError("give result (it worked) or error (it failed), not both",
                         fields=[("error", "not with result")])
    _fit(arguments=args.arguments, result=args.result)
    view = await call.approvals.report(args.run, ReportResult(
        approval=args.approval, arguments=args.arguments,
        status="failed" if args.error is not None else "succeeded",
        result=args.result, error=args.error))
    return answers.report_answer(view, call.wait_s)


async def get_run(call: Call, args: ReadRun) -> BaseModel:
    view = await call.approvals.read(args.run)
    return answers.run_report(view, await call.approvals.trace(args.run), call.wait_s)


@dataclass(frozen=True)
class ToolSpec:
    title: str
    description: str
    arguments: type[Arguments]
    answer: type[BaseModel]
    run: Callable[[Call, Any], Awaitable[BaseModel]]
    annotations: ToolAnnotations


def tool_specs(wait_s: float) -> dict[str, ToolSpec]:
    wait = f"{wait_s:g} seconds"
    return {
        "list_flows": ToolSpec(
            "List the flows you may ask for approval",
            "The flows this server's token may start: for each, its description, the actions it "
            "approves (request_approval's `action`) and the arguments it takes (request_approval's "
            "`arguments`: type, required, allowed values). Call it first to learn which risky "
            "actions need approval and how to ask.",
            NoArguments, answers.FlowListing, list_flows,
            ToolAnnotations(read_only_hint=True, open_world_hint=False)),
        "request_approval": ToolSpec(
            "Ask people in Slack before acting",
            "Ask people, through a Baton flow, before you perform a risky action (run a production "
            "command, merge, deploy, send). The people the flow names decide in Slack; they may "
            f"approve, reject, or change the arguments. Waits up to {wait}, then answers: "
            "`approved` (perform the action ONCE with exactly the returned `arguments`, which may "
            "differ from yours, then call report_result), `pending` (call wait_for_approval with "
            "the run id), or `rejected` / `timed_out` / `cancelled` / `failed` (do not act; "
            "tell the user the reason). Never act before an approval.",
            RequestApproval, answers.ApprovalAnswer, request_approval,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                            open_world_hint=True)),
        "wait_for_approval": ToolSpec(
            "Wait for the decision",
            f"Wait up to {wait} for people to decide a request (the run id request_approval "
            "returned); call it again as often as needed while the answer is `pending`. Answers "
            "like request_approval: act only on `approved`, with the returned `arguments`.",
            WaitForApproval, answers.ApprovalAnswer, wait_for_approval,
            ToolAnnotations(read_only_hint=True, open_world_hint=True)),
        "report_result": ToolSpec(
            "Report what the approved action did",
            "After performing an approved action, report it once: the run id, the `approval` id "
            "and the exact `arguments` of the approved answer, and `result` (what it returned) or "
            "`error` (why it failed). The approval is consumed: a second report, or one with "
            "other arguments, is refused and recorded.",
            ReportOutcome, answers.ReportAnswer, report_result,
            ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                            open_world_hint=False)),
        "get_run": ToolSpec(
            "Read a request's status and history",
            "A run's status, the answer so far (as wait_for_approval gives it, without waiting), "
            "who asked for what, and the main entries of its decision trace: gates, decisions "
            "with reasons and changes, escalations, reports.",
            ReadRun, answers.RunReport, get_run,
            ToolAnnotations(read_only_hint=True, open_world_hint=False)),
    }


# -- refusals, in words a model can act on ------------------------------------------------------
HINTS: dict[type[BatonError], str] = {
    Unauthorized: "Baton refused this server's API token; the operator must give it a valid "
                  "one (`baton tokens create`). Nothing was done.",
    Forbidden: "Call list_flows for the flows you may start. Nothing was written.",
    NotFound: "Check the flow name (list_flows) or the run id (the one request_approval "
              "returned). Nothing was written.",
    InputError: "Fix that and call again (list_flows shows what each flow takes). Nothing was "
                "written.",
    Conflict: "Nothing changed (the refusal is in the run's trace).",
    FlowError: "The flow file has errors the operator must fix (`baton flows validate`). "
               "Nothing was written.",
    Unavailable: "Nothing is lost: the run waits there; call again in a moment.",
    BatonError: "Nothing was written.",
}


# The service names a request's fields as the HTTP API does; a tool's caller knows them by
# the tool's argument names.
FIELD_NAMES = {"inputs": "arguments", "tool": "action", "Idempotency-Key": "idempotency_key"}


def _field(name: str) -> str:
    head, dot, rest = name.partition(".")
    return FIELD_NAMES.get(head, head) + dot + rest


def refused(exc: BatonError) -> str:
    hint = next(HINTS[kind] for kind in type(exc).__mro__ if kind in HINTS)
    if isinstance(exc, InputError) and exc.fields:
        message = "; ".join(f"{_field(name)}: {why}" for name, why in exc.fields)
    elif isinstance(exc, FlowError):
        message = str(exc).splitlines()[0]
    else:
        message = str(exc)
    message = hide_paths(message)
    lead = "Unavailable" if isinstance(exc, Unavailable) else "Refused"
    return f"{lead}: {message}{'' if message.endswith('.') else '.'} {hint}"


def _invalid(name: str, spec: ToolSpec, exc: ValidationError) -> str:
    known = ", ".join(spec.arguments.model_fields) or "no arguments"
    parts = []
    for error in exc.errors()[:10]:
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            parts.append(f"{where}: not an argument of {name} (it takes {known})")
        else:
            parts.append(f"{where}: {error['msg']}")
    return f"Invalid arguments for {name}: {'; '.join(parts)}. Nothing was written."


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=text)], is_error=True)


def _answer(answer: BaseModel) -> CallToolResult:
    data = answer.model_dump(mode="json")
    lead = data.get("next") or ""
    body = json.dumps({k: v for k, v in data.items() if k != "next"}, ensure_ascii=False,
                      indent=1)
    return CallToolResult(content=[TextContent(text=f"{lead}\n{body}")], structured_content=data)


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("baton")
    except PackageNotFoundError:  # a source tree that was never installed
        return ""


def build_server(asker_for: Callable[[ServerRequestContext[Any]], Asker],
                 wait_s: float) -> Server[Any]:
    """The MCP server: its tools answer through the backend `asker_for` gives each call."""
    specs = tool_specs(wait_s)
    waits = Waits()
    listed = [Tool(name=name, title=spec.title, description=spec.description,
                   input_schema=_schema(spec.arguments), output_schema=_schema(spec.answer),
                   annotations=spec.annotations)
              for name, spec in specs.items()]
    waiting = next(t for t in listed if t.name == "wait_for_approval")
    timeout = waiting.input_schema["properties"]["timeout"]
    timeout["description"] = (f"seconds to wait at most before answering `pending` (default and "
                              f"most: {wait_s:g})")

    async def list_tools(ctx: ServerRequestContext[Any],
                         params: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=listed)

    async def call_tool(ctx: ServerRequestContext[Any],
                        params: CallToolRequestParams) -> CallToolResult:
        spec = specs.get(params.name)
        if spec is None:
            return _error(f"Unknown tool {params.name!r}; Baton's tools are "
                          f"{', '.join(specs)}.")
        try:
            args = spec.arguments.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _error(_invalid(params.name, spec, exc))
        try:
            asker = asker_for(ctx)
            call = Call(asker, wait_s, ctx.session.report_progress, waits)
            with structlog.contextvars.bound_contextvars(tool=params.name, caller=asker.key):
                return _answer(await spec.run(call, args))
        except BatonError as exc:
            log.info("mcp_refused", tool=params.name, error=type(exc).__name__, why=str(exc))
            return _error(refused(exc))
        except Exception:
            log.exception("mcp_failed", tool=params.name)
            return _error("Baton failed to answer this call; its log says why. Nothing you did "
                          "caused it: try again, or get_run to see where the request stands.")

    return Server("baton", version=_version(), title="Baton", instructions=INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call_tool)
