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
| `conflicts` | conflict id -> {agreed, winner, verdict, severity, policy, followed,   |
|           | effect}: the signal followed and what following it did                    |
| `now`     | the current time (a CEL timestamp)                                       |

Expressions are compiled when the flow file is loaded, and checked against a sample
context built from the flow's declared inputs and agents, so a misspelt name or a type
error fails at load time with the file and path, not in the middle of a run.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from gates.cel_cost import CostProblem, Shape, collection, estimate, join, text

_CEL: ModuleType | None = None
_CEL_LOADING = threading.Lock()  # an extension module may be initialised once per process


def _cel() -> ModuleType:
    """The compiled CEL module, loaded when the first condition is compiled (a command that
    compiles none, such as `baton status`, never loads it), and without the `cel` package's
    own __init__, which also imports its interactive shell (prompt_toolkit, rich): 0.2 s off
    every CLI start. It is registered as `cel.cel`, so a later `import cel` reuses it."""
    global _CEL
    if _CEL is not None:
        return _CEL
    with _CEL_LOADING:
        if _CEL is None:
            _CEL = _load_cel()
    return _CEL


def _load_cel() -> ModuleType:
    package = importlib.util.find_spec("cel")
    if package is not None and package.submodule_search_locations:
        for path in Path(next(iter(package.submodule_search_locations))).glob("cel.*.so"):
            spec = importlib.util.spec_from_file_location("cel.cel", path)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules.setdefault("cel.cel", module)
                return module
    import cel  # another layout (e.g. a Windows .pyd): the ordinary way

    return cel


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

# The CEL parser and evaluator recurse once per nested bracket and per chained operator, on
# the calling thread's stack: 16,000 chained `+ 1` (or 100 nested parentheses on a 512 KB
# thread stack, as macOS gives worker threads) overflow it and kill the whole process with
# a segmentation fault. Policy conditions are short; these bounds are far above any real one
# and far below the crash.
MAX_LENGTH = 4000
MAX_DEPTH = 32
MAX_OPERATORS = 300
_STRING = re.compile(r"[rR]?(?:'{3}[\s\S]*?'{3}"
                     r'|"{3}[\s\S]*?"{3}'
                     r"|'(?:\\.|[^'\\\n])*'"
                     r'|"(?:\\.|[^"\\\n])*")')
_OPERATOR = re.compile(r"&&|\|\||==|!=|<=|>=|[-+*/%<>!?.\[]")


# What a condition may cost, in interpreter steps (gates/cel_cost.py; about 0.1-0.2 us each):
# the CEL library holds the interpreter lock while it evaluates, so this bounds how long one
# evaluation can stop everything else. A flow's conditions together get FLOW_BUDGET: loading
# evaluates each against sample values, and a rules agent may evaluate all of its rules.
COST_BUDGET = 100_000
FLOW_BUDGET = 1_000_000


def _any_value(depth: int) -> Shape:
    inner = text(20_000)
    for _ in range(depth):
        inner = join(inner, collection(100, inner, key=text(64)))
    return inner


# For a condition compiled without a flow: every value as large as any context holds.
GENERIC_SHAPES: dict[str, Shape] = {"inputs": _any_value(1), "signals": _any_value(2),
                                    "run": _any_value(2), "gates": _any_value(3),
                                    "conflicts": _any_value(2), "now": Shape()}


class ConditionError(ValueError):
    """A condition that does not compile, refers to unknown names, or fails to evaluate."""


@dataclass(frozen=True)
class Condition:
    source: str
    program: Any = field(repr=False, compare=False)
    # The names the expression reads. CEL converts every value it is given, about 2 us a
    # value, so a run's whole context (its signals, the run) costs 50-150 us to convert,
    # more than evaluating `inputs.amount > 1000` with only `inputs` given.
    names: tuple[str, ...] = field(repr=False, compare=False)
    cost: int = field(default=0, compare=False)  # worst-case steps (gates/cel_cost.py)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            return self.program.execute({n: context[n] for n in self.names if n in context})
        except KeyError as exc:
            raise ConditionError(
                f"{_quoted(self.source)} refers to {exc.args[0]!r}, which is not there "
                "(guard optional values with has(...))"
            ) from None
        except (RuntimeError, TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise ConditionError(f"{_quoted(self.source)} failed: {_first_sentence(exc)}") from None
        except BaseException as exc:
            if not _panicked(exc):
                raise
            raise ConditionError(f"{_quoted(self.source)} failed: {_first_sentence(exc)}") from None

    def is_true(self, context: Mapping[str, Any]) -> bool:
        value = self.evaluate(context)
        if not isinstance(value, bool):
            raise ConditionError(
                f"{_quoted(self.source)} gave {type(value).__name__} {value!r}; a condition must "
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


def _panicked(exc: BaseException) -> bool:
    """A panic inside the Rust CEL library: pyo3 raises it as a BaseException."""
    return type(exc).__name__ == "PanicException"


def _quoted(source: str) -> str:
    """The expression as error messages quote it (a long one shortened)."""
    return f"`{source}`" if len(source) <= 120 else f"`{source[:100]}…` ({len(source)} characters)"


def _too_complex(source: str) -> str | None:
    if len(source) > MAX_LENGTH:
        return f"is {len(source)} characters long; a condition may have at most {MAX_LENGTH}"
    code = _STRING.sub('""', source)  # brackets and operators inside strings do not count
    depth = deepest = 0
    for ch in code:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    if deepest > MAX_DEPTH:
        return f"nests brackets {deepest} deep; a condition may nest at most {MAX_DEPTH}"
    operators = len(_OPERATOR.findall(code))
    if operators > MAX_OPERATORS:
        return (f"has {operators} operators; a condition may have at most {MAX_OPERATORS} "
                "(split it, or compute the value in an agent)")
    return None


def compile_condition(source: str, extra_names: tuple[str, ...] = (),
                      shapes: Mapping[str, Shape] | None = None) -> Condition:
    """Parse `source`, check the names it uses, and bound its cost given the `shapes` of the
    values it may read (default: as large as any run's); raise ConditionError otherwise."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionError("expected a CEL expression, got an empty value")
    problem = _too_complex(source)
    if problem is not None:
        raise ConditionError(f"{_quoted(source)} {problem}")
    try:
        program = _cel().compile(source)
    except ValueError as exc:
        detail = str(exc).split("ERROR: ", 1)[-1].replace("<input>:", "column ")
        raise ConditionError(f"{_quoted(source)} is not valid CEL: {detail[:500]}") from None
    except BaseException as exc:
        if not _panicked(exc):
            raise
        raise ConditionError(f"{_quoted(source)} is not valid CEL: {_first_sentence(exc)}") from None
    bound = set(_COMPREHENSION.findall(source))
    allowed = set(CONTEXT_NAMES) | set(extra_names) | bound
    unknown = [name for name in program.variables() if name not in allowed]
    if unknown:
        raise ConditionError(
            f"{_quoted(source)} uses unknown name {unknown[0]!r}; conditions can use "
            + ", ".join(CONTEXT_NAMES + tuple(extra_names))
        )
    functions = [
        name for name in program.functions()
        if name[0].isalpha() and name not in STANDARD_FUNCTIONS
    ]
    if functions:
        raise ConditionError(f"{_quoted(source)} calls unknown function {functions[0]!r}")
    try:
        cost = estimate(source, shapes if shapes is not None else GENERIC_SHAPES)
    except CostProblem as exc:
        raise ConditionError(f"{_quoted(source)} {exc}") from None
    if cost > COST_BUDGET:
        raise ConditionError(
            f"{_quoted(source)} may take up to {cost:,} steps to evaluate; a condition may take "
            f"at most {COST_BUDGET:,}. Comprehensions (all, exists, map, filter) multiply by the "
            "size of what they loop over, and nest: loop over fewer or shorter lists, or compute "
            "the value in an agent")
    return Condition(source=source, program=program, names=tuple(program.variables()),
                     cost=cost)


def check_against(condition: Condition, samples: list[Mapping[str, Any]], *,
                  want_bool: bool = True) -> None:
    """Evaluate against sample contexts to catch misspelt fields and type errors early."""
    for sample in samples:
        value = condition.evaluate(sample)
        if want_bool and not isinstance(value, bool):
            raise ConditionError(
                f"{_quoted(condition.source)} gives {type(value).__name__}, not true/false"
            )
