"""A condition's worst-case cost is bounded before it is evaluated (issue 21, item 4): the CEL
library has no cost limit and holds the interpreter lock while it evaluates, so a condition
that loops for seconds would stop every thread of the server. How long the refused and the
most expensive accepted conditions take is measured by `python bench/conditions.py`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gates.cel_cost import COSTS, CostProblem, Shape, collection, estimate, text
from gates.cel_regex import PatternProblem, regex_program
from gates.cel_syntax import Node, parse
from gates.conditions import COST_BUDGET, ConditionError, compile_condition


def ones(n: int) -> str:
    return "[" + ",".join("1" for _ in range(n)) + "]"


# The example: 1.8 KB, three nested exists over 300-element lists (35 s to validate).
HOSTILE = f"{ones(300)}.exists(x, {ones(300)}.exists(y, {ones(300)}.exists(z, x+y+z < 0)))"


def test_the_hostile_condition_is_refused_before_it_is_evaluated() -> None:
    assert 1800 <= len(HOSTILE) <= 1900
    with pytest.raises(ConditionError) as refused:
        compile_condition(HOSTILE)
    message = str(refused.value)
    assert "(1848 characters) may take up to 324,361,202 steps to evaluate; a condition may " \
           "take at most 100,000" in message
    assert "Comprehensions (all, exists, map, filter) multiply" in message


@pytest.mark.parametrize("source", [
    "inputs.amount > 10000.0 || signals.risk.verdict != 'ok'",
    "signals.exists(a, signals[a].verdict == 'block')",
    "inputs.vendor.matches('(?i)^test|acme$')",
    "size(run.comments) > 0 && run.comments.exists(c, c.contains('fraud'))",
    "gates.approve.decided_by.exists(p, p == 'bob')",
    "inputs.country in ['US', 'FR', 'DE', 'GB', 'JP']",
    "[1, 2, 3].map(x, x * 2).filter(y, y > 2).size() == 2",
])
def test_ordinary_conditions_cost_little(source: str) -> None:
    assert compile_condition(source).cost < COST_BUDGET / 5


def test_the_flows_own_sizes_decide_what_a_comprehension_costs() -> None:
    pairwise = "signals.exists(a, signals.exists(b, signals[a].verdict != signals[b].verdict))"
    with pytest.raises(ConditionError, match="may take up to"):
        compile_condition(pairwise)  # any flow: up to 100 signals
    three_agents = {"signals": collection(3, collection(8, text(20_000)))}
    assert compile_condition(pairwise, shapes=three_agents).cost < COST_BUDGET


@pytest.mark.parametrize(("source", "fragment"), [
    (f"{ones(5)}.exists(a, {ones(5)}.exists(b, {ones(5)}.exists(c, {ones(5)}.exists(d, a == d))))",
     "nests exists() more than 3 deep"),
    (f"size({ones(1001)}) > 0", "writes a list of 1001 items; a condition's lists and maps may "
                                "have at most 1000"),
    ("inputs.vendor.matches(inputs.pattern)", "matches() takes its pattern as a string written "
                                              "in the condition"),
    ("inputs.vendor.matches('(a{100}){100}')", "may take up to"),  # 10,000 states per character
    ("inputs.vendor.matches('\\\\w{100}')", "may take up to"),  # a Unicode table, 100 times
    (f"{ones(1000)}.map(x, [x, x, x, x]).size() > 0", "may take up to"),  # map copies: n^2
    (f"{ones(600)}.exists(x, inputs.note.contains('x'))", "may take up to"),  # 600 x 20,000 chars
])
def test_structure_and_expensive_functions_are_bounded(source: str, fragment: str) -> None:
    with pytest.raises(ConditionError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        compile_condition(source)


def test_regex_programs_grow_with_counted_repeats_and_unicode_classes() -> None:
    assert regex_program("abc").states == 3
    assert regex_program("(a{100}){100}").states > 10_000
    assert regex_program("\\w").size > 100 * regex_program("a").size
    assert regex_program("(?i)abc").size == 3 * regex_program("abc").size
    assert regex_program("[^a]").size > 100  # a negated class is most of Unicode
    with pytest.raises(PatternProblem, match="an unmatched '\\)'"):
        regex_program("a)")  # the library refuses it too; the reader never guesses


def test_costs_add_up_text_copies_and_comparisons() -> None:
    long_text = {"inputs": collection(2, text(20_000))}
    one = estimate("inputs.a == 'x'", long_text)
    concatenated = estimate("inputs.a + inputs.b + inputs.a == 'x'", long_text)
    assert concatenated > one + 400  # 60,000 characters copied
    literal = Shape(items=3)
    assert estimate("[1, 2, 3] == [1, 2, 3]", {}) > literal.volume()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="()[]{}.!-+*/%<>=&|?:,'\"\\ abxyz019_", max_size=120))
def test_the_estimate_refuses_or_bounds_any_text_the_library_compiles(source: str) -> None:
    """Only ConditionError ever comes out: the reader behind the estimate never crashes."""
    try:
        condition = compile_condition(source)
    except ConditionError:
        return
    assert condition.cost >= 1


# -- matches(): a pattern is read as the engine reads it, or refused ---------------------------
@pytest.mark.parametrize(("pattern", "why"), [
    # Under the x flag a space separates an atom from its repeat: a looser reading counted the
    # space a thousand times and the group once (3.8 s in a loop, within the budget).
    ("(?x)(. {100}) {100}", "the x flag"),
    ("(?x:\\w) {300}", "the x flag"),
    ("\\u{41}{1000}", "an escape \\u"),  # an escape the reader does not know hides the repeat
    ("a{ 5}", "not a counted repeat"),
    ("a{,5}", "not a counted repeat"),
    ("a**", "a repeat of a repeat"),
    ("\\b{3}", "nothing to repeat"),
    ("(?#comment)", "unknown group or flags"),
    ("a{5000}", "a counted repeat over 1000"),
    ("(" * 40 + "x" + ")" * 40, "nested more than 32 deep"),  # was a RecursionError
    ("[" * 40 + "x" + "]" * 40, "nested more than 32 deep"),
    ("[a", "an unclosed '['"),
    ("a\\", "at the end of the pattern"),
])
def test_a_pattern_the_reader_cannot_follow_is_refused(pattern: str, why: str) -> None:
    with pytest.raises(PatternProblem) as refused:
        regex_program(pattern)
    assert why in str(refused.value)


def test_searching_counts_every_state_unless_the_pattern_is_plain_text() -> None:
    """The engine's fast automaton gives up on `[ab]*a[ab]{20}c` over random a/b text and
    follows every state for every character (171 ms over 100,000 characters, estimated at
    54,000 steps before); literal text never makes it give up."""
    assert regex_program("(?i)^fraud|scam$").plain
    assert not regex_program("[ab]*a[ab]{20}c").plain
    assert not regex_program("\\bfraud\\b").plain  # non-ASCII text: the slow engine
    note = {"inputs": collection(1, text(100_000))}
    plain = estimate("inputs.note.matches('(?i)fraud|scam')", note)
    assert plain < COST_BUDGET / 20
    exploding = "inputs.note.matches('[ab]*a[ab]{20}c')"
    assert estimate(exploding, note) > 100_000 * 25  # each character, each state
    assert estimate(exploding, {"inputs": collection(1, text(200))}) < COST_BUDGET


def test_a_pattern_is_decoded_as_cel_decodes_it() -> None:
    """`\\?` is `?` in a CEL string (a repeat in the pattern); Python's decoding kept it as an
    escaped `?`. An escape CEL does not have leaves nothing to read: the worst is assumed."""
    assert estimate("'x'.matches('a\\?')", {}) == estimate("'x'.matches('a?')", {})
    with pytest.raises(CostProblem, match="its pattern as a string written in the condition"):
        estimate("'x'.matches(b'a')", {})


def test_every_kind_of_node_the_parser_makes_has_a_cost() -> None:
    def kinds(node: Node) -> set[str]:
        found = {node.kind}
        for child in (*node.args, *([node.target] if node.target else [])):
            found |= kinds(child)
        return found

    source = ("inputs.items[0] + size([1, 2]) > 0 ? {'a': -1}['a'] == 1 "
              ": google.protobuf.Int64Value{value: 1} == 1 && inputs.x.all(i, i > 0)")
    made = kinds(parse(source))
    assert made == {"literal", "ident", "select", "index", "call", "list", "map", "message",
                    "op", "cond"}
    assert made <= set(COSTS)
