"""Policy conditions in CEL (Common Expression Language).

CEL is not Turing-complete and cannot reach outside the values it is given, which is why
gates and boundaries are written in it and never in Python. A condition sees:

| name      | what                                                                     |
|-----------|--------------------------------------------------------------------------|
| `inputs`  | the run's inputs (after approved edits)                                  |
| `signals` | agent name -> {verdict, severity, severity_level, confidence, summary,   |
|           | rationale, failed, branch}; the latest signal of each agent that ran      |
| `run`     | {id, flow, requester, steps, tokens, started_at, comments}               |
| `gates`   | gate id -> {outcome, option, decided_by, reason}                          |
| `conflicts` | conflict id -> {agreed, winner, verdict, severity, policy}             |
| `now`     | the current time (a CEL timestamp)                                       |

Expressions are compiled when the flow file is loaded, and checked against a sample
context built from the flow's declared inputs and agents, so a misspelt name or a type
error fails at load time with the file and path, not in the middle of a run.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


def _load_cel() -> ModuleType:
    """The compiled CEL module, without the `cel` package's own __init__, which also
    imports its interactive shell (prompt_toolkit, rich): 0.2 s off every CLI start."""
    package = importlib.util.find_spec("cel")
    if package is not None and package.submodule_search_locations:
        for path in Path(next(iter(package.submodule_search_locations))).glob("cel.*.so"):
            spec = importlib.util.spec_from_file_location("cel.cel", path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    import cel  # another layout (e.g. a Windows .pyd): the ordinary way

    return cel


cel = _load_cel()

CONTEXT_NAMES = ("inputs", "signals", "run", "gates", "conflicts", "now")

# CEL's standard functions and macros, as `Program.functions()` names them. Operators
# (`_+_`, `@in`, `!_`) are recognised by their punctuation.
STANDARD_FUNCTIONS = frozenset({
    "size", "has", "all", "exists", "exists_one", "map", "filter",
    "contains", "startsWith", "endsWith", "matches",
    "int", "uint", "double", "string", "bytes", "dyn", "type",
    "timestamp", "duration",
    "getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
})
_COMPREHENSION = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


class ConditionError(ValueError):
    """A condition that does not compile, refers to unknown names, or fails to evaluate."""


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any = field(repr=False, compare=False)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            return self.program.execute(dict(context))
        except KeyError as exc:
            raise ConditionError(
                f"`{self.source}` refers to {exc.args[0]!r}, which is not there "
                "(guard optional values with has(...))"
            ) from None
        except (RuntimeError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise ConditionError(f"`{self.source}` failed: {_first_sentence(exc)}") from None

    def is_true(self, context: Mapping[str, Any]) -> bool:
        value = self.evaluate(context)
        if not isinstance(value, bool):
            raise ConditionError(
                f"`{self.source}` gave {type(value).__name__} {value!r}; a condition must "
                "give true or false"
            )
        return value

    def references(self) -> list[str]:
        """Dotted paths the expression reads, e.g. ["inputs.amount"], for the trace."""
        return sorted(set(re.findall(
            r"\b(?:inputs|signals|run|gates|conflicts)(?:\.[A-Za-z_]\w*)+", self.source)))


def _first_sentence(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def compile_condition(source: str, extra_names: tuple[str, ...] = ()) -> Condition:
    """Parse `source` and check the names it uses; raise ConditionError otherwise."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionError("expected a CEL expression, got an empty value")
    try:
        program = cel.compile(source)
    except ValueError as exc:
        detail = str(exc).split("ERROR: ", 1)[-1].replace("<input>:", "column ")
        raise ConditionError(f"`{source}` is not valid CEL: {detail}") from None
    bound = set(_COMPREHENSION.findall(source))
    allowed = set(CONTEXT_NAMES) | set(extra_names) | bound
    unknown = [name for name in program.variables() if name not in allowed]
    if unknown:
        raise ConditionError(
            f"`{source}` uses unknown name {unknown[0]!r}; conditions can use "
            + ", ".join(CONTEXT_NAMES + tuple(extra_names))
        )
    functions = [
        name for name in program.functions()
        if name[0].isalpha() and name not in STANDARD_FUNCTIONS
    ]
    if functions:
        raise ConditionError(f"`{source}` calls unknown function {functions[0]!r}")
    return Condition(source=source, program=program)


def check_against(condition: Condition, samples: list[Mapping[str, Any]], *,
                  want_bool: bool = True) -> None:
    """Evaluate against sample contexts to catch misspelt fields and type errors early."""
    for sample in samples:
        value = condition.evaluate(sample)
        if want_bool and not isinstance(value, bool):
            raise ConditionError(
                f"`{condition.source}` gives {type(value).__name__}, not true/false"
            )
