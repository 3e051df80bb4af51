"""Loading and strictly validating flow files (the org file: orchestrator/orgfile.py).

Every problem is reported with the file, the line, the path inside the file and what
was expected, and all problems of a file are reported at once.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import stat
import time
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from gates.conditions import (
    Condition,
)
from gates.org import Org
from orchestrator import spec as S
from orchestrator.callables import CallableLoader
from orchestrator.errors import FlowError, NotFound, Problem
from orchestrator.filelimits import size_problems
from orchestrator.flowcheck import FlowChecker
from orchestrator.orgfile import ORG_FILE_NAME
from orchestrator.orgfile import load_org as load_org  # its former home, where callers find it
from orchestrator.problems import validation_problems, vocabulary
from orchestrator.program import CompileError, Program, compile_flow
from orchestrator.reach import Reach
from orchestrator.yamlfile import YamlDoc, parse_yaml, read_yaml
from storage.trace import canonical_json

log = structlog.get_logger("baton.flows")


_ALL_KEYS = vocabulary(
    S.InputSpec, S.RetrySpec, S.Subtask, S.Rule, S.RulesAgent, S.PythonAgent, S.ExternalAgent,
    S.LlmAgent, S.LlmDefaults, S.ParallelStep,
    S.OptionSpec, S.GateStep, S.ConflictStep, S.BoundaryStep, S.ActionStep, S.ExternalStep,
    S.AgentStep,
    S.RouteStep, S.PlanStep, S.Step, S.LevelSpec, S.EscalationSpec, S.LimitsSpec, S.Flow,
    S.ScheduleTrigger, S.WebhookTrigger, S.Triggers,
) | {"kind"}


# -- flows ----------------------------------------------------------------------------
def flow_digest(flow: S.Flow) -> str:
    return hashlib.sha256(canonical_json(definition(flow)).encode()).hexdigest()


def definition(flow: S.Flow) -> dict[str, Any]:
    return flow.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def compile_document(doc: YamlDoc, org: Org | None = None,
                     callables: CallableLoader | None = None, reach: Reach | None = None) -> Program:
    """Validate a parsed flow file and compile it. Raises FlowError with every problem.
    People, modules and what the flow may reach are checked when given."""
    if not isinstance(doc.data, dict):
        raise FlowError([doc.problem((), "expected a mapping with name, inputs, agents, steps")])
    too_big = size_problems(doc)
    if too_big:
        raise FlowError(too_big)
    try:
        flow = S.Flow.model_validate(doc.data)
    except ValidationError as exc:
        raise FlowError(validation_problems(doc, exc, _ALL_KEYS)) from None
    except OverflowError as exc:  # a duration past timedelta's range (`timeout: 1e20d`, `.inf`)
        raise FlowError([doc.problem((), f"a duration or number is too large: {exc}")]) from None
    checker = FlowChecker(doc, flow, org, callables, reach)
    checker.run()
    try:
        program = compile_flow(flow)
    except CompileError as exc:
        checker.add(exc.path, exc.message)
        program = None
    if checker.problems:
        raise FlowError(checker.problems)
    assert program is not None
    program.digest = flow_digest(flow)
    program.source = doc.source
    _compile_conditions(program, checker.conditions)
    return program


def _compile_conditions(program: Program, compiled: dict[str, Condition]) -> None:
    """Attach the checker's compiled CEL to nodes (every condition was checked)."""
    for node in program.nodes.values():
        if node.kind == "gate":
            node.conditions["when"] = compiled[node.spec.when]
        elif node.kind == "boundary":
            node.conditions["check"] = compiled[node.spec.check]
    for name, agent in program.flow.agents.items():
        if isinstance(agent, S.RulesAgent):
            program.agent_conditions[name] = [compiled[r.when] for r in agent.rules]


def load_flow(path: Path, org: Org | None = None, callables: CallableLoader | None = None,
              source: str | None = None, reach: Reach | None = None) -> Program:
    return compile_document(read_yaml(path, source), org, callables, reach)


def program_from_definition(data: dict[str, Any], source: str = "(stored flow)") -> Program:
    """Rebuild a stored flow version. People, modules and what it may reach are checked when
    they are used (an llm agent checks its server and key before every call). Its size was
    checked when its file was loaded: as JSON, with shorthands spelt out, it may be larger
    than the file was, and it must still rebuild."""
    return compile_document(parse_yaml(canonical_json(data), source, max_bytes=None,
                                       max_values=None))


_SETTLED_NS = 2_000_000_000


class FlowCatalog:
    """The flows of a folder, reloaded when a file changes."""

    def __init__(self, folder: Path, org: Org, callables: CallableLoader,
                 reach: Reach | None = None) -> None:
        self.folder = folder
        self.org = org
        self.callables = callables
        self.reach = reach or Reach()
        self._cache: dict[Path, tuple[float, Program | FlowError]] = {}
        # The folder's flow files as last listed, by the folder's mtime then: every run
        # start looks its flow up, and listing the folder took longer than the rest of
        # finding the flow.
        self._listing: tuple[tuple[int, int], list[Path]] | None = None

    def files(self) -> list[Path]:
        try:
            folder = os.stat(self.folder)
        except OSError:
            return []
        if not stat.S_ISDIR(folder.st_mode):
            return []
        # Adding, removing or renaming a file moves the folder's mtime; its ctime moves then
        # too, and also when the mtime is set back (a copy that keeps times).
        changed = (folder.st_mtime_ns, folder.st_ctime_ns)
        listing = self._listing
        if listing is not None and listing[0] == changed:
            return list(listing[1])
        files = sorted(p for p in self.folder.iterdir()
                       if p.suffix in (".yaml", ".yml") and p.name != ORG_FILE_NAME)
        # Those times move in clock ticks: a file added in the tick of this listing would
        # leave them as they are. So a listing is kept only once the last change is older.
        settled = time.time_ns() - max(changed) > _SETTLED_NS
        self._listing = (changed, files) if settled else None
        return list(files)

    def _load(self, path: Path) -> Program | FlowError:
        mtime = os.stat(path).st_mtime
        cached = self._cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            result: Program | FlowError = load_flow(path, self.org, self.callables,
                                                    reach=self.reach)
        except FlowError as exc:
            result = exc
        except Exception as exc:  # a bug in one file's checks must not take every flow down
            log.exception("flow_check_crashed", file=str(path))
            result = FlowError([Problem(str(path), "", f"Baton could not check this file "
                                                       f"({type(exc).__name__}), so it is not "
                                                       "loaded; please report it")])
        self._cache[path] = (mtime, result)
        return result

    def load_all(self) -> tuple[dict[str, Program], list[FlowError]]:
        flows: dict[str, Program] = {}
        errors: list[FlowError] = []
        for path in self.files():
            try:
                result = self._load(path)
            except FileNotFoundError:  # removed since the folder was listed
                continue
            if isinstance(result, FlowError):
                errors.append(result)
            elif result.name in flows:
                errors.append(FlowError([Problem(str(path), "name",
                                                 f"flow {result.name!r} is also defined in "
                                                 f"{flows[result.name].source}")]))
            else:
                flows[result.name] = result
        return flows, errors

    def get(self, name: str) -> Program:
        flows, errors = self.load_all()
        if name in flows:
            return flows[name]
        for error in errors:
            if any(Path(p.file).stem == name for p in error.problems):
                raise error
        known = ", ".join(sorted(flows)) or "none"
        close = difflib.get_close_matches(name, list(flows), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise NotFound(f"unknown flow {name!r}.{hint} Flows in {self.folder}: {known}")
