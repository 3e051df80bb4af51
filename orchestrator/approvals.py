"""The approval service: what an external agent may ask Baton, whatever the transport.

The HTTP API (`bot/api/`) and the MCP server call these methods; the Python client reaches
them through HTTP. Every method takes the `Caller` a token stands for (`authenticate`) and
applies the same policy (`gates.access`): a token starts only its flows, sees and acts only
on its own runs, and never decides a gate (there is no such method). Refusals raise the
errors of `orchestrator.errors`, each naming the problem; a transport maps them to its own
codes (HTTP: 401, 403, 404, 409, 422, 503). Nothing is written on a refusal, except that
a refused report of a result is traced on its run.

Methods are blocking (they use the database) except `wait`, a coroutine that holds no
thread while it waits; `call` runs a blocking method on the service's small pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import difflib
import functools
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gates.access import Caller, may_start, owns
from gates.callbacks import AllowedHost, callback_problem
from orchestrator import external, tokens
from orchestrator.approval_views import (
    CancelRun,
    FlowView,
    InputView,
    ReportResult,
    RunView,
    StartRun,
    SubmitSignal,
    run_view,
)
from orchestrator.engine import Engine, parse_ref
from orchestrator.errors import BatonError, Conflict, FlowError, Forbidden, InputError, NotFound
from orchestrator.inputs import check_inputs
from orchestrator.program import Program
from orchestrator.readers.export import export_run
from orchestrator.text import well_formed
from orchestrator.watch import RunWatch
from storage import runs as stored
from storage.models import Run
from storage.trace import canonical_json

T = TypeVar("T")
MAX_WAIT_S = 60.0
MAX_IDEMPOTENCY_KEY = 255


def tools_of(program: Program) -> list[str]:
    return sorted({n.spec.tool for n in program.nodes.values() if n.kind == "external"})


class ApprovalService:
    def __init__(self, engine: Engine, *, callback_hosts: Sequence[AllowedHost] = (),
                 watch: RunWatch | None = None, workers: int = 4) -> None:
        self.engine = engine
        self.callback_hosts = tuple(callback_hosts)
        self.watch = watch or RunWatch(engine.db)
        if self.watch not in engine.observers:
            engine.observers.append(self.watch)
        # Every blocking call of the API runs here: a fixed handful of threads, however many
        # requests wait.
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="baton-api")

    def start(self) -> None:
        self.watch.start()

    def stop(self) -> None:
        self.watch.stop()
        self.pool.shutdown(wait=True)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the service's pool, in the caller's log context."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(context.run, fn, *args))

    # -- who is asking ------------------------------------------------------------------------
    def authenticate(self, presented: str | None) -> Caller:
        return tokens.authenticate(self.engine.db, self.engine.org, presented,
                                   self.engine.clock.now())

    # -- flows --------------------------------------------------------------------------------
    def flows(self, caller: Caller) -> list[FlowView]:
        """The flows this caller may start, with their inputs and tools."""
        found = []
        for name in sorted(caller.flows):
            try:
                program = self.engine.flows.get(name)
            except BatonError:
                continue  # removed, or invalid right now: not startable
            allowed = program.flow.requesters
            if allowed and caller.principal not in self.engine.org.resolve_many(allowed):
                continue
            flow = program.flow
            found.append(FlowView(
                name=flow.name, title=flow.title, description=flow.description.strip(),
                inputs={k: InputView(type=v.type, required=v.required, description=v.description,
                                     choices=v.choices, min=v.min, max=v.max, default=v.default)
                        for k, v in flow.inputs.items()},
                tools=tools_of(program)))
        return found

    # -- starting ---------------------------------------------------------------------------------
    def start_run(self, caller: Caller, request: StartRun,
                  idempotency_key: str | None = None) -> tuple[RunView, bool]:
        """Start a run (or, for an Idempotency-Key already used by this token with the same
        request, find the run it started). Returns the run and whether it is new."""
        if idempotency_key is not None and not (
                0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY and idempotency_key.isascii()
                and idempotency_key.isprintable()):
            raise InputError("Idempotency-Key: 1 to 255 printable ASCII characters",
                             fields=[("Idempotency-Key", "1 to 255 printable ASCII characters")])
        program = self._program(caller, request.flow)
        refusal = may_start(caller, program.name)
        if refusal:
            raise Forbidden(refusal)
        flow = program.flow
        values, problems = check_inputs(flow, request.inputs)
        fields = [(f"inputs.{name}", message) for name, message in problems]
        tools = tools_of(program)
        if request.tool is not None and request.tool not in tools:
            fields.append(("tool", f"{flow.name} approves " + (", ".join(tools) or "no tool")
                                   + f", not {request.tool!r}"))
        if request.callback_url is not None:
            problem = callback_problem(request.callback_url, self.callback_hosts)
            if problem:
                fields.append(("callback_url", problem))
        if fields:
            raise InputError("; ".join(f"{f}: {m}" for f, m in fields), fields=fields)
        if flow.requesters and caller.principal not in self.engine.org.resolve_many(flow.requesters):
            raise Forbidden(f"{self.engine.org.display(caller.principal)} may not start "
                            f"{flow.name}; it may be started by: " + ", ".join(flow.requesters))
        summary = well_formed(request.summary) if request.summary else None
        tool = request.tool or (tools[0] if len(tools) == 1 else None)
        digest = hashlib.sha256(canonical_json({
            "flow": flow.name, "inputs": values, "tool": tool, "summary": summary,
            "callback_url": request.callback_url}).encode()).hexdigest()
        request_key = (f"api:{caller.token_id}:{idempotency_key}"
                       if idempotency_key is not None else None)
        if request_key is not None:
            with self.engine.db.read() as s:
                earlier = stored.run_by_request(s, request_key)
            if earlier is not None:
                return self._replayed(earlier, digest), False
        origin = {**caller.origin(), "tool": tool, "summary": summary,
                  "callback_url": request.callback_url, "request": digest,
                  "idempotency_key": idempotency_key}
        run = self.engine.start_run(flow.name, values, caller.principal, origin=origin,
                                    request_key=request_key)
        if run.origin.get("request") != digest:  # the same key, sent at once with another body
            return self._replayed(run, digest), False
        return self.view(run), True

    def _program(self, caller: Caller, name: str) -> Program:
        """The flow to start. A refusal names only the caller's own flows: the server's
        folder, and the flows other tokens start, are none of its business."""
        try:
            return self.engine.flows.get(name)
        except NotFound:
            mine = sorted(caller.flows)
            close = difflib.get_close_matches(name, mine, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise NotFound(f"unknown flow {name!r}.{hint} Token {caller.token!r} may start: "
                           f"{', '.join(mine) or 'no flow'}") from None
        except FlowError:
            refusal = may_start(caller, name)
            if refusal:  # another token's broken flow: its problems are not this caller's
                raise Forbidden(refusal) from None
            raise

    def _replayed(self, run: Run, digest: str) -> RunView:
        if run.origin.get("request") != digest:
            raise Conflict(f"this Idempotency-Key already started {run.ref} with another "
                           "request; use a new key for a new request")
        return self.view(run)

    # -- one run ------------------------------------------------------------------------------
    def own_run(self, caller: Caller, ref: str) -> Run:
        """The caller's run; NotFound for another token's (whose existence is not told)."""
        try:
            run = self.engine.get_run(parse_ref(ref))
        except NotFound:
            run = None
        except BatonError as exc:
            raise NotFound(str(exc)) from None
        if run is None or not owns(caller, run.origin or {}):
            raise NotFound(f"no run {ref.strip()} started with token {caller.token!r}")
        return run

    def view(self, run: Run) -> RunView:
        assert run.id is not None
        with self.engine.db.read() as s:
            fresh = stored.read_run(s, run.id) or run
            gates = stored.gates_of_run(s, run.id)
            decisions = stored.decisions_of_run(s, run.id)
            actions = stored.actions_of_run(s, run.id)
            state = stored.halt_state(s)
        program = self.engine.program_for(fresh)
        steps = {n.key for n in program.nodes.values() if n.kind == "external"}
        return run_view(self.engine.org, fresh, gates, decisions, actions, steps,
                        external.halt_reason(self.engine.org, state), self.engine.clock.now())

    def read(self, caller: Caller, ref: str) -> RunView:
        return self.view(self.own_run(caller, ref))

    async def wait(self, caller: Caller, ref: str, timeout: float) -> RunView:
        """The run as soon as it needs the caller (an approved action to perform) or has
        nothing left to wait for, or as it is after `timeout` seconds (at most 60)."""
        timeout = min(max(0.0, timeout), MAX_WAIT_S)
        run = await self.call(self.own_run, caller, ref)
        assert run.id is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self.watch.changes(run.id) as changes:
            while True:
                changes.clear()  # before reading: a change after the read wakes us
                view = await self.call(self.view, run)
                remaining = deadline - loop.time()
                if view.settled or remaining <= 0:
                    await self.call(tokens.reauthenticate, self.engine.db, self.engine.org,
                                    caller, self.engine.clock.now())
                    return view
                await changes.wait(remaining)

    def report(self, caller: Caller, ref: str, request: ReportResult) -> RunView:
        run = self.own_run(caller, ref)
        error = (request.error or "the caller reported a failure"
                 if request.status == "failed" else None)
        self.engine.report_external(run.ref, caller.principal, external.Report(
            request.approval, request.arguments, request.status, request.result, error))
        return self.view(run)

    def signal(self, caller: Caller, ref: str, request: SubmitSignal) -> RunView:
        run = self.own_run(caller, ref)
        output = request.model_dump(exclude={"agent"})
        self.engine.submit_signal(run.ref, request.agent, output, caller.principal)
        return self.view(run)

    def cancel(self, caller: Caller, ref: str, request: CancelRun) -> RunView:
        run = self.own_run(caller, ref)
        self.engine.stop(run.ref, caller.principal, request.reason)
        return self.view(run)

    def trace(self, caller: Caller, ref: str) -> dict[str, Any]:
        return export_run(self.engine.db, self.own_run(caller, ref))
