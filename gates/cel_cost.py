"""The worst-case cost of a CEL condition, known before it is ever evaluated.

The CEL library has no cost limit of its own, and it holds Python's interpreter lock while
it evaluates: a condition that loops for 30 seconds stops every thread of `baton serve` for
30 seconds (health checks, Slack acknowledgements, other runs). So a condition's cost is
bounded when the flow file is loaded, as cel-go's cost estimator does for Kubernetes: from
the expression's structure and the largest values it can be given, never by running it.

The unit is one step of the interpreter (reading a name, an operator, one element of a
comprehension), about 0.1-0.2 microseconds. Work proportional to text counts one step per
CHARS_PER_STEP characters. `matches` compiles its pattern on every call; its cost comes from
the pattern's estimated program (gates/cel_regex.py), which is why a pattern must be written
in the condition, where its size is known.

Estimates are upper bounds: both sides of `&&` and of `?:` are counted, comprehensions run
over the largest list their range can be, and a value from the run is as large as the flow
allows (see `Shape`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gates.cel_regex import PatternProblem, regex_program
from gates.cel_syntax import Node, SyntaxProblem, parse, string_value

CHARS_PER_STEP = 100
# `matches`: steps per unit of a pattern's compiled size, and per character and state of a
# search the fast engine gave up on (measured: up to 200 ns, two steps; bench/conditions.py).
COMPILE_STEPS = 10
FALLBACK_STEPS = 2
MACROS = ("all", "exists", "exists_one", "map", "filter")
# Nesting and literal limits, stated plainly (the estimate would refuse most of these too,
# but a person reads "3 deep" more easily than a cost).
MAX_NESTED_MACROS = 3
MAX_LITERAL_ITEMS = 1000


class CostProblem(ValueError):
    """An expression whose cost cannot be bounded, or that breaks a structural limit."""


@dataclass(frozen=True)
class Shape:
    """The most a value can hold: `items` elements (a list, or a map with keys at most
    `key`), each at most `item`; `chars` characters (a string or bytes)."""

    items: int = 0
    chars: int = 0
    item: Shape | None = None
    key: Shape | None = None  # a map's keys: what a comprehension over the map sees

    def element(self) -> Shape:
        return self.item or SCALAR

    def looped(self) -> Shape:
        """What a comprehension's variable holds: a list's items, a map's keys."""
        return self.key or self.element()

    def volume(self) -> int:
        """Steps to walk the whole value (compare it, copy it)."""
        inner = self.item.volume() if self.item is not None else 1
        keys = self.key.volume() if self.key is not None else 0
        return 1 + self.chars // CHARS_PER_STEP + self.items * (inner + keys)


SCALAR = Shape()


def join(*shapes: Shape | None) -> Shape:
    """A shape at least as large as each of `shapes` (for `a ? b : c`, list elements)."""
    present = [s for s in shapes if s is not None]
    if not present:
        return SCALAR
    items = [s.item for s in present if s.item is not None]
    keys = [s.key for s in present if s.key is not None]
    return Shape(max(s.items for s in present), max(s.chars for s in present),
                 join(*items) if items else None, join(*keys) if keys else None)


def text(chars: int) -> Shape:
    return Shape(chars=chars)


def collection(items: int, item: Shape, key: Shape | None = None) -> Shape:
    """A list of `items` items (or, with `key`, a map of that many entries)."""
    return Shape(items=items, item=item, key=key)


# -- expressions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cost:
    steps: int
    shape: Shape


class _Estimator:
    def __init__(self, roots: Mapping[str, Shape]) -> None:
        self.roots = roots

    def cost(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        return COSTS[node.kind](self, node, scope, depth)

    def _literal(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        value = str(node.value)
        if value[:1] in "'\"" or value[:2].lower() in ("r'", 'r"', "b'", 'b"', "rb", "br"):
            return _Cost(1 + len(value) // CHARS_PER_STEP, text(len(value)))
        return _Cost(1, SCALAR)

    def _ident(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        return _Cost(1, scope.get(node.name) or self.roots.get(node.name) or SCALAR)

    def _select(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        inner = self.cost(node.args[0], scope, depth)
        return _Cost(inner.steps + 1, inner.shape.element())

    def _index(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        inner, key = (self.cost(n, scope, depth) for n in node.args)
        return _Cost(inner.steps + key.steps + key.shape.volume(), inner.shape.element())

    def _list(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        if len(node.args) > MAX_LITERAL_ITEMS:
            raise CostProblem(f"writes a list of {len(node.args)} items; a condition's lists "
                              f"and maps may have at most {MAX_LITERAL_ITEMS}")
        parts = [self.cost(n, scope, depth) for n in node.args]
        return _Cost(1 + sum(p.steps for p in parts),
                     collection(len(parts), join(*(p.shape for p in parts))))

    def _map(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        if len(node.args) // 2 > MAX_LITERAL_ITEMS:
            raise CostProblem(f"writes a map of {len(node.args) // 2} entries; a condition's "
                              f"lists and maps may have at most {MAX_LITERAL_ITEMS}")
        parts = [self.cost(n, scope, depth) for n in node.args]
        hashing = sum(p.shape.volume() for p in parts[::2])  # each key is hashed
        return _Cost(1 + sum(p.steps for p in parts) + hashing,
                     collection(len(parts) // 2, join(*(p.shape for p in parts[1::2])),
                                key=join(*(p.shape for p in parts[::2]))))

    _message = _map

    def _cond(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        test, then, otherwise = (self.cost(n, scope, depth) for n in node.args)
        return _Cost(1 + test.steps + max(then.steps, otherwise.steps),
                     join(then.shape, otherwise.shape))

    def _op(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        parts = [self.cost(n, scope, depth) for n in node.args]
        steps = 1 + sum(p.steps for p in parts)
        if len(parts) == 1:
            return _Cost(steps, SCALAR)
        left, right = parts[0].shape, parts[1].shape
        if node.name == "+":  # numbers, or a new string or list of both sides
            both = join(left, right)
            joined = Shape(left.items + right.items, left.chars + right.chars, both.item, both.key)
            return _Cost(steps + joined.volume(), joined)
        if node.name in ("==", "!=", "<", "<=", ">", ">="):
            return _Cost(steps + min(left.volume(), right.volume()), SCALAR)
        if node.name == "in":  # a list compares each item; a map hashes the key first
            each = 1 + min(left.volume(), right.element().volume())
            return _Cost(steps + left.volume() + right.items * each, SCALAR)
        return _Cost(steps, SCALAR)

    def _call(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        if node.target is not None and node.name in MACROS and node.args \
                and node.args[0].kind == "ident":
            return self._macro(node, scope, depth)
        if node.name == "has" and node.target is None:
            inner = [self.cost(n.args[0] if n.kind == "select" else n, scope, depth)
                     for n in node.args]
            return _Cost(1 + sum(p.steps for p in inner), SCALAR)
        operands = ([node.target] if node.target is not None else []) + list(node.args)
        parts = [self.cost(n, scope, depth) for n in operands]
        steps = 1 + sum(p.steps for p in parts)
        chars = sum(p.shape.chars for p in parts)
        if node.name == "matches":
            return _Cost(steps + self._matches(node, parts), SCALAR)
        first = parts[0].shape if parts else SCALAR
        steps += chars // CHARS_PER_STEP
        if node.name in ("string", "bytes"):
            return _Cost(steps + first.volume(), text(max(first.chars, 40)))
        if node.name == "dyn":
            return _Cost(steps, first)
        return _Cost(steps, SCALAR)

    def _matches(self, node: Node, parts: list[_Cost]) -> int:
        pattern_node = node.args[-1] if node.args else None
        pattern = (string_value(str(pattern_node.value))
                   if pattern_node is not None and pattern_node.kind == "literal" else None)
        if pattern is None:
            raise CostProblem("matches() takes its pattern as a string written in the condition "
                              "(such as matches('^INV-[0-9]+$')), so that its cost is known")
        try:
            program = regex_program(pattern)
        except PatternProblem as exc:
            raise CostProblem(f"has a matches() pattern whose cost Baton cannot bound: {exc}") \
                from None
        subject = parts[0].shape.chars if len(parts) > 1 else 0
        # Compiled on every call, then run over the text: plain text as cheaply as contains(),
        # anything else at worst through every state of the pattern for every character.
        search = (subject // CHARS_PER_STEP if program.plain
                  else subject * program.states * FALLBACK_STEPS)
        return program.size * COMPILE_STEPS + search + subject // CHARS_PER_STEP

    def _macro(self, node: Node, scope: Mapping[str, Shape], depth: int) -> _Cost:
        if depth >= MAX_NESTED_MACROS:
            raise CostProblem(f"nests {node.name}() more than {MAX_NESTED_MACROS} deep inside "
                              "other all/exists/exists_one/map/filter")
        assert node.target is not None
        source = self.cost(node.target, scope, depth)
        element = source.shape.looped()
        inner = {**scope, node.args[0].name: element}
        body = [self.cost(n, inner, depth + 1) for n in node.args[1:]]
        per_item = 1 + sum(b.steps for b in body)
        items = source.shape.items
        steps = 1 + source.steps + items * per_item
        if node.name in ("map", "filter"):
            # The result grows by list concatenation, copying what it holds at each step: n^2/2.
            result = body[-1].shape if node.name == "map" and body else element
            steps += items * items // 2 * result.volume()
            return _Cost(steps, collection(items, result))
        return _Cost(steps, SCALAR)


def estimate(source: str, roots: Mapping[str, Shape]) -> int:
    """The most steps evaluating `source` can take, given the shapes of the names it reads.
    Raises CostProblem when it cannot be bounded or breaks a structural limit."""
    try:
        tree = parse(source)
    except SyntaxProblem as exc:
        raise CostProblem(f"cannot be read to bound its cost ({exc}); simplify it") from None
    return _Estimator(roots).cost(tree, {}, 0).steps


# Each node kind of gates/cel_syntax.py, and how its cost is estimated.
COSTS: dict[str, Callable[[_Estimator, Node, Mapping[str, Shape], int], _Cost]] = {
    "literal": _Estimator._literal, "ident": _Estimator._ident, "select": _Estimator._select,
    "index": _Estimator._index, "list": _Estimator._list, "map": _Estimator._map,
    "cond": _Estimator._cond, "op": _Estimator._op, "call": _Estimator._call,
    "message": _Estimator._message,
}
