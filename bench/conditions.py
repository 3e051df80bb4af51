"""What a hostile CEL condition costs now: `python bench/conditions.py [--raw]`.

1. Validating the issue's flow file (a 1.8 KB gate condition, three nested `exists` over
   300-element lists), as `baton flows validate` does: refused, and how long that took; the
   same for a pattern that hid its repeats from an earlier estimate (the `x` flag).
2. The slowest conditions the budget admits: for each kind of work (nested comprehensions,
   `map`'s copies, text, regular expressions, maps), the largest condition of that kind
   under the budget, evaluated on the largest values a run can hold. This is how long one
   evaluation can hold the interpreter lock at most, as far as we could find.
3. With `--raw`: the hostile conditions evaluated by the CEL library itself, unbounded (what
   validating the first cost before: tens of seconds; the second was accepted and held the
   interpreter for seconds).

Figures go to docs/flows.md ("Size limits"). Timing is wall time on this machine; nothing
here is an assertion.
"""

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    del sys.path[0]
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from gates.cel_cost import Shape, collection, text
from gates.conditions import COST_BUDGET, ConditionError, cel, compile_condition
from orchestrator.errors import FlowError
from orchestrator.loader import load_flow


def ones(n: int) -> str:
    return "[" + ",".join("1" for _ in range(n)) + "]"


HOSTILE = f"{ones(300)}.exists(x, {ones(300)}.exists(y, {ones(300)}.exists(z, x+y+z < 0)))"
# Under the x flag, `. {100}` is `.` repeated a hundred times; a reading that took the space for
# the repeated atom estimated 2,145 steps a call.
HIDDEN = f"{ones(44)}.exists(i, 'x'.matches('(?x)(. {{100}}) {{100}}'))"
FLOW = """\
name: hostile
inputs:
  amount: {{type: number, required: true}}
steps:
  - gate:
      id: approve
      when: "{when}"
      approvers: "role:finance-approver"
"""

BIG = "é" * 20_000  # the longest text a run holds, two bytes a character
# Random a/b text: what makes the regex engine's fast automaton give up on `[ab]*a[ab]{n}c`.
AB = "".join(random.Random(1).choice("ab") for _ in range(20_000))
SHAPES = {"inputs": collection(2, text(20_000)),
          "run": collection(7, collection(100, text(20_000)))}
CONTEXT = {"inputs": {"note": BIG, "other": AB}, "run": {"comments": [BIG] * 100}}
# A pattern that is not plain text searches each character in each of its states at worst,
# so over 20,000 characters none fits the budget: patterns are timed on the default
# max_length of an input, 2,000 characters.
SHORT = ({"inputs": collection(2, text(2_000))},
         {"inputs": {"note": BIG[:2_000], "other": AB[:2_000]}})
REGEX = ("Unicode regex", "Unicode regex in a loop", "counted regex repeats",
         "regex the fast engine gives up on", "Unicode word boundaries in a loop")
KINDS: dict[str, Callable[[int], str]] = {
    "nested exists over literal lists": lambda n: f"{ones(n)}.exists(x, {ones(n)}.exists(y, x + y < 0))",
    "three nested exists": lambda n: f"{ones(n)}.exists(x, {ones(n)}.exists(y, "
                                     f"{ones(n)}.exists(z, x+y+z < 0)))",
    "map (its result is copied as it grows)": lambda n: f"{ones(n)}.map(x, [x, x, x, x]).size() < 0",
    "filter": lambda n: f"{ones(n)}.filter(x, x > 0).size() < 0",
    "deep equality of built lists": lambda n: f"{ones(n)}.map(x, {ones(n)}) == {ones(n)}.map(x, {ones(n)})",
    "contains on 20,000 characters": lambda n: f"{ones(n)}.exists(x, inputs.note.contains('zz'))",
    "text concatenated then searched":
        lambda n: f"{ones(n)}.exists(x, (inputs.note + inputs.other).contains('zz'))",
    "comments searched": lambda n: f"{ones(n)}.exists(x, run.comments.exists(c, c.contains('zz')))",
    "membership in a map": lambda n: f"{ones(n)}.exists(x, inputs.note in {{'a': 1, 'b': 2}})",
    "Unicode regex": lambda n: f"inputs.note.matches('\\\\w{{{n}}}')",
    "Unicode regex in a loop": lambda n: f"{ones(n)}.exists(x, inputs.note.matches('\\\\b\\\\w\\\\d'))",
    "counted regex repeats": lambda n: f"inputs.note.matches('(a{{{n}}}){{10}}')",
    "regex the fast engine gives up on": lambda n: f"inputs.other.matches('[ab]*a[ab]{{{n}}}c')",
    "Unicode word boundaries in a loop":
        lambda n: f"{ones(n)}.exists(x, inputs.note.matches('\\\\b\\\\w'))",
    "regex compiled in a loop": lambda n: f"{ones(n)}.exists(x, 'x'.matches('(.{{100}}){{8}}'))",
    "size() of long text": lambda n: f"{ones(n)}.exists(x, size(inputs.note) < 0)",
}


def largest_within_budget(make: Callable[[int], str],
                          shapes: dict[str, Shape]) -> tuple[int, object] | None:
    low, high, best = 1, 1000, None
    while low <= high:
        middle = (low + high) // 2
        try:
            best = (middle, compile_condition(make(middle), shapes=shapes))
            low = middle + 1
        except ConditionError:
            high = middle - 1
    return best


def main() -> None:
    for name, when in (("nested exists", HOSTILE), ("hidden regex repeats", HIDDEN)):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "hostile.yaml"
            path.write_text(FLOW.format(when=when))
            started = time.perf_counter()
            try:
                load_flow(path)
                outcome = "ACCEPTED (a regression)"
            except FlowError as exc:
                outcome = "refused: " + str(exc).split("`", 2)[-1].strip()[:70] + "…"
            took = time.perf_counter() - started
        print(f"hostile flow file, {name} ({len(when):,}-character condition): {outcome}")
        print(f"  validated in {took * 1000:.1f} ms (including the CEL library's first compile)")

    print(f"\nslowest evaluation within the budget ({COST_BUDGET:,} steps), best of 3:")
    slowest = 0.0
    for name, make in KINDS.items():
        shapes, context = SHORT if name in REGEX else (SHAPES, CONTEXT)
        found = largest_within_budget(make, shapes)
        if found is None:
            print(f"  {name:42} nothing of this kind fits")
            continue
        size, condition = found
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            with contextlib.suppress(ConditionError):
                condition.evaluate(context)  # type: ignore[attr-defined]
            best = min(best, time.perf_counter() - t0)
        slowest = max(slowest, best)
        cost = condition.cost  # type: ignore[attr-defined]
        print(f"  {name:42} n={size:4}  {cost:7,} steps  {best * 1000:7.2f} ms")
    print(f"slowest: {slowest * 1000:.1f} ms")

    if "--raw" in sys.argv:
        for name, when in (("nested exists", HOSTILE), ("hidden regex repeats", HIDDEN)):
            program = cel.compile(when)
            t0 = time.perf_counter()
            program.execute({})
            print(f"\n{name}, evaluated by the CEL library, unbounded: "
                  f"{time.perf_counter() - t0:.1f} s (the interpreter lock held throughout)")


if __name__ == "__main__":
    main()
