"""Starting a run: who may, with which inputs, and the transaction that stores it (and,
in the CLI, takes it as far as it goes at once)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

import structlog

from orchestrator import external
from orchestrator.agents.endpoints import SetupProblem, explain, setup_problems
from orchestrator.errors import (
    Forbidden,
    InputError,
    SetupError,
    Unavailable,
)
from orchestrator.inputs import parse_inputs
from orchestrator.program import Program
from orchestrator.running import _Carry
from orchestrator.runtime import Tx, emergency_stop
from storage import runs
from storage.records import Run
from storage.runs import halt_state

log = structlog.get_logger("baton.engine")


class Starting:
    """Part of `Engine` (orchestrator/engine.py): starting runs."""

    def start_run(self, flow_name: str, inputs: Mapping[str, Any], requester: str,
                  origin: Mapping[str, Any] | None = None, request_key: str | None = None) -> Run:
        """Validate and start a run; in the CLI it is advanced before this returns.

        With a `request_key` (the Slack request that asked for it) a run starts once, however
        often the request is processed (a retry, a replica finishing a dead one's work)."""
        if request_key is not None:
            existing = self._run_for_request(request_key)
            if existing is not None:
                return existing
        program = self.flows.get(flow_name)
        flow = program.flow
        if flow.requesters and requester not in self.org.resolve_many(flow.requesters):
            raise Forbidden(f"you may not start {flow.name}; it may be started by: "
                             + ", ".join(flow.requesters))
        if (origin or {}).get("kind") != "api" and external.performed_by_caller(program):
            raise InputError(f"{flow.name} ends with an action its caller performs (an agent "
                             "with an API token, docs/api.md): start it through the API, which "
                             "gives the caller the approval and takes its report")
        values = parse_inputs(flow, inputs)
        self.check_setup(program)
        now = self.clock.now()
        origin = dict(origin or {})
        run, carry = self._isolate_on_crash(partial(
            self._insert_run, program, values, requester, origin, request_key, now))
        if run is None:
            assert request_key is not None
            found = self._run_for_request(request_key)
            assert found is not None
            return found
        assert run.id is not None
        if carry is not None:
            carry()
        else:
            self._schedule(run.id)
        return run

    def setup_report(self) -> dict[str, list[SetupProblem]]:
        """Every valid flow's setup problems now (`baton serve` at start-up, /metrics)."""
        flows, _ = self.flows.load_all()
        return {name: setup_problems(program.flow, self.llm.model, self.llm.reach)
                for name, program in flows.items()}

    def check_setup(self, program: Program) -> None:
        """Refuse to start a run whose llm agents cannot work on this server (a key that is
        not set, a server or key the settings do not allow), before anyone is asked anything."""
        problems = setup_problems(program.flow, self.llm.model, self.llm.reach)
        if problems:
            log.warning("run_refused_setup", flow=program.name,
                        problems=[str(p) for p in problems])
            raise SetupError(explain(program.name, problems))

    def _insert_run(self, program: Program, values: dict[str, Any], requester: str,
                    origin: dict[str, Any], request_key: str | None, now: datetime,
                    isolated: bool) -> tuple[Run | None, _Carry | None]:
        """The transaction that starts a run (None: the same request started it elsewhere),
        and, inline, takes it as far as it goes without slow work (`_carry_on`)."""
        flow = program.flow
        carry: _Carry | None = None
        try:
            with self.db.writer() as w:
                state = halt_state(w)
                if state.halted:
                    raise Unavailable(f"Baton is halted ({emergency_stop(self.org, state)}); "
                                      "no new runs start until an admin resumes Baton")
                version_id = self._flow_version(w, program, now)
                row = {"flow_name": flow.name, "flow_version_id": version_id,
                       "status": "running", "requester": requester, "inputs": values,
                       "requested_inputs": dict(values), "cursor": program.start,
                       "origin": origin, "created_at": now, "updated_at": now,
                       "request_key": request_key}
                run = runs.insert_run(w, row)  # None: the same request, started elsewhere
                if run is not None:
                    tx = Tx.new_run(w, run, program, self, now)
                    tx.record("run_started", {"flow": flow.name, "version": str(flow.version),
                                              "digest": program.digest, "requester": requester,
                                              "inputs": values, "origin": origin},
                              actor=requester, event="run_started")
                    log.info("run_started", run=run.ref, flow=flow.name, requester=requester)
                    carry = self._carry_on(tx, isolated=isolated)
        except BaseException:
            if carry is not None:  # it did not commit
                carry.abandon()
            raise
        return run, carry

    def _run_for_request(self, request_key: str) -> Run | None:
        with self.db.read() as s:
            return runs.run_for_request(s, request_key)
