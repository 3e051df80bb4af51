"""What a `matches` pattern costs, read the way the CEL library's engine reads it (Rust's
`regex` crate, RE2 syntax), before the pattern is ever compiled.

`matches` compiles its pattern on every call, then searches the text, holding the
interpreter lock for both. Compiling costs what the pattern compiles to (`Program.size`:
counted repeats multiply, Unicode classes are tables of hundreds of ranges). Searching is
cheap while the engine's lazy automaton works, but it gives up on a pattern whose automaton
explodes (`[ab]*a[ab]{20}`) or at a Unicode word boundary in non-ASCII text, and its
fallback follows every state of the pattern for every character (`Program.states`).
A pattern of literal text, groups, `|`, anchors and flags (`Program.plain`) never explodes:
searching with it costs what `contains` does.

The reader follows regex-syntax's grammar and refuses whatever it does not know rather than
guess, because a pattern it misreads is a pattern it misjudges: under the `x` flag, a space
before `{1000}` hid a thousand-fold repeat from a looser reading, and a condition that
compiled it in a loop held the interpreter for 3.8 s within the budget.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

MAX_NESTING = 32  # groups and classes inside each other
MAX_REPEAT = 1000  # the largest count in {n,m}
_FLAGS = set("imsUuR")  # `x` (spaces and comments ignored) is refused: see the module doc
_SMALL_CLASSES = "dDsS"
_CONTROLS = "ntrfva"
_WORD_EDGES = "bB<>"  # \b, \B, and regex 1.10's \< and \>
_HEX = set(string.hexdigits)
_ESCAPED = set(string.punctuation) - set("<>")


class PatternProblem(ValueError):
    """A pattern the reader cannot follow, or that breaks a structural limit."""


@dataclass(frozen=True)
class Program:
    """What a pattern compiles to: `size` weighs compiling it, `states` how many states a
    search may follow per character when the fast engine gives up, `plain` whether it is
    literal text only (groups, `|`, anchors and flags aside), which never makes it give up."""

    size: int
    states: int
    plain: bool = True

    def __add__(self, other: Program) -> Program:
        return Program(self.size + other.size, self.states + other.states,
                       self.plain and other.plain)

    def times(self, count: int) -> Program:
        return Program(self.size * count, self.states * count, self.plain)


# Unicode tables: \d, \s and negations compile to a few hundred ranges at most; \w, \W and
# the properties (\pL, \p{Letter}) to thousands (`\w{33}` took 33 ms to compile).
UNICODE_CLASS = Program(300, 4, plain=False)
LARGE_CLASS = Program(1000, 4, plain=False)
ANY_CHAR = Program(8, 4, plain=False)  # `.`: any UTF-8 sequence
WORD_EDGE = Program(1000, 1, plain=False)  # \b needs the \w table; non-ASCII text: the fallback
ONE = Program(1, 1)
NOTHING = Program(0, 0)


def _literal(char: str) -> Program:
    width = len(char.encode("utf-8", "surrogatepass"))  # a byte is a state
    return Program(width, width)


class _Reader:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.at = 0
        self.depth = 0
        self.case_insensitive = False

    def problem(self, why: str) -> PatternProblem:
        return PatternProblem(f"{why} (character {min(self.at, len(self.pattern) - 1) + 1} of "
                              f"the pattern)")

    def peek(self, ahead: int = 0) -> str:
        at = self.at + ahead
        return self.pattern[at] if at < len(self.pattern) else ""

    def read(self) -> Program:
        program = self.alternation()
        if self.at < len(self.pattern):
            raise self.problem("an unmatched ')'")
        if self.case_insensitive:  # every letter becomes a class of its cases
            program = program.times(3)
        return Program(max(program.size, 1), max(program.states, 1), program.plain)

    def alternation(self) -> Program:
        total = self.concatenation()
        while self.peek() == "|":
            self.at += 1
            total = total + self.concatenation()
        return total

    def concatenation(self) -> Program:
        total = NOTHING
        while self.peek() not in ("", "|", ")"):
            atom, repeatable = self.atom()
            total = total + self.repeated(atom, repeatable)
        return total

    # -- repeats -----------------------------------------------------------------------------
    def repeated(self, atom: Program, repeatable: bool) -> Program:
        char = self.peek()
        if char not in ("*", "+", "?", "{"):
            return atom
        if not repeatable:
            raise self.problem("a repeat with nothing to repeat (an anchor, a word boundary or "
                               "a flag cannot be repeated)")
        if char == "{":
            low, high = self.counted()
            times = high if high is not None else low + 1
            result = Program(atom.size * max(times, 1) + 1, atom.states * max(times, 1) + 1,
                             plain=False)
        else:
            self.at += 1
            result = Program(atom.size + 1, atom.states + 1, plain=False)
        if self.peek() == "?":  # lazy
            self.at += 1
        if self.peek() in ("*", "+", "?", "{"):
            raise self.problem("a repeat of a repeat: put the first one in a group, (?:…)")
        return result

    def counted(self) -> tuple[int, int | None]:
        """`{n}`, `{n,}` or `{n,m}`, digits only, nothing else between the braces."""
        end = self.pattern.find("}", self.at)
        body = self.pattern[self.at + 1:end] if end != -1 else ""
        low, comma, high = body.partition(",")
        if end == -1 or not low.isdigit() or not low.isascii() or (
                high and not (high.isdigit() and high.isascii())):
            raise self.problem("a '{' that is not a counted repeat {n}, {n,} or {n,m} (write a "
                               "literal brace as \\{)")
        counts = [int(low)] + ([int(high)] if high else [])
        if max(counts) > MAX_REPEAT:
            raise self.problem(f"a counted repeat over {MAX_REPEAT}")
        if high and int(high) < int(low):
            raise self.problem(f"a counted repeat {{{body}}} whose maximum is below its minimum")
        self.at = end + 1
        return int(low), (int(high) if high else (None if comma else int(low)))

    # -- atoms: (program, whether it can be repeated) ---------------------------------------
    def atom(self) -> tuple[Program, bool]:
        char = self.peek()
        if char == "(":
            return self.group()
        if char == "[":
            return self.char_class(), True
        if char == "\\":
            return self.escape()
        if char in ("*", "+", "?", "{"):
            self.repeated(NOTHING, False)  # raises: nothing to repeat
        self.at += 1
        if char == ".":
            return ANY_CHAR, True
        if char in ("^", "$"):
            return ONE, False
        return _literal(char), True

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.problem(f"groups or classes nested more than {MAX_NESTING} deep")

    def group(self) -> tuple[Program, bool]:
        self.nest()
        self.at += 1  # (
        if self.peek() == "?":
            self.at += 1
            if (self.peek() == "P" and self.peek(1) == "<") or self.peek() == "<":
                self.at += 2 if self.peek() == "P" else 1
                end = self.pattern.find(">", self.at)
                name = self.pattern[self.at:end] if end != -1 else ""
                if not name or not all(c.isascii() and (c.isalnum() or c in "_.[]") for c in name):
                    raise self.problem("a group name (?P<name>…) of letters, digits and '_'")
                self.at = end + 1
            else:
                flags_end = self.at
                while self.pattern[flags_end:flags_end + 1] not in ("", ":", ")"):
                    flags_end += 1
                flags = self.pattern[self.at:flags_end]
                if "x" in flags:
                    raise self.problem("the x flag (spaces and comments ignored) is not supported; "
                                       "write the pattern without spaces")
                if not flags_end < len(self.pattern) or any(f not in _FLAGS | {"-"} for f in flags):
                    raise self.problem(f"unknown group or flags (?{flags}…: Baton reads (?:…), "
                                       "(?P<name>…) and the flags i, m, s, U, u, R")
                if "i" in flags.partition("-")[0]:
                    self.case_insensitive = True
                self.at = flags_end + 1
                if self.pattern[flags_end] == ")":  # (?i): sets flags, matches nothing
                    self.depth -= 1
                    return NOTHING, False
        inner = self.alternation()
        if self.peek() != ")":
            raise self.problem("an unclosed '('")
        self.at += 1
        self.depth -= 1
        return inner + ONE, True

    def escape(self) -> tuple[Program, bool]:
        kind = self.peek(1)
        self.at += 2
        if not kind:
            self.at -= 1
            raise self.problem("a '\\' at the end of the pattern")
        if kind in _SMALL_CLASSES:
            return UNICODE_CLASS, True
        if kind in ("w", "W"):
            return LARGE_CLASS, True
        if kind in ("p", "P"):
            self.property_name()
            return LARGE_CLASS, True
        if kind in _WORD_EDGES:
            return WORD_EDGE, False
        if kind in ("A", "z"):
            return ONE, False
        if kind == "x":
            return _literal(self.hex_char()), True
        if kind in _CONTROLS or kind in _ESCAPED or kind == " ":
            return ONE, True
        self.at -= 1
        raise self.problem(f"an escape \\{kind} that Baton does not read; escape punctuation only, "
                           "or use \\d \\w \\s \\b \\pL \\p{Name} \\x41 \\x{263A} \\n \\t")

    def property_name(self) -> None:
        if self.peek() == "{":
            end = self.pattern.find("}", self.at)
            if end == -1:
                raise self.problem("an unclosed \\p{")
            self.at = end + 1
        elif self.peek().isascii() and self.peek().isalpha():
            self.at += 1
        else:
            raise self.problem("\\p needs a one-letter class or a name in braces: \\pL, \\p{Greek}")

    def hex_char(self) -> str:
        if self.peek() == "{":
            end = self.pattern.find("}", self.at)
            digits = self.pattern[self.at + 1:end] if end != -1 else ""
            self.at = end + 1
        else:
            digits = self.pattern[self.at:self.at + 2]
            self.at += 2
            if len(digits) != 2:
                digits = ""
        if not digits or len(digits) > 8 or not set(digits) <= _HEX or int(digits, 16) > 0x10FFFF:
            raise self.problem("\\x needs two hex digits or a code point in braces: \\x41, \\x{263A}")
        return chr(int(digits, 16))

    # -- classes ------------------------------------------------------------------------------
    def char_class(self) -> Program:
        """`[…]`, nested classes, ranges, `&&` `--` `~~`, POSIX `[:alpha:]` and escapes.
        Unicode classes and negation make it large; its text is its size otherwise."""
        start = self.at
        tables = self.class_body()
        size = len(self.pattern[start:self.at].encode("utf-8", "surrogatepass"))
        return Program(size + tables.size, max(tables.states, 1), plain=False)

    def class_body(self) -> Program:
        """Reads from '[' to its ']'; returns the Unicode tables it holds."""
        self.nest()
        self.at += 1
        tables = NOTHING
        if self.peek() == "^":
            tables += UNICODE_CLASS
            self.at += 1
        if self.peek() == "]":  # a first ']' is literal
            self.at += 1
        while True:
            char = self.peek()
            if char == "":
                raise self.problem("an unclosed '['")
            if char == "]":
                self.at += 1
                self.depth -= 1
                return tables
            if char == "[" and self.peek(1) == ":":
                end = self.pattern.find(":]", self.at + 2)
                name = self.pattern[self.at + 2:end] if end != -1 else ""
                if not name.lstrip("^").isalpha() or not name.isascii():
                    raise self.problem("a POSIX class [:name:] of letters")
                if name.startswith("^"):
                    tables += UNICODE_CLASS
                self.at = end + 2
            elif char == "[":
                tables += self.class_body()
            elif char == "\\":
                program, _ = self.escape()
                if program is WORD_EDGE:
                    raise self.problem("a word boundary inside a class")
                if not program.plain:
                    tables += program
            else:
                self.at += 1


def regex_program(pattern: str) -> Program:
    """An upper estimate of what `pattern` compiles to. Raises PatternProblem for anything
    the reader does not follow."""
    return _Reader(pattern).read()
