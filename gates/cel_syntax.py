"""A small reader of CEL expressions, into a tree Baton can reason about.

The CEL library compiles and evaluates expressions but does not show their structure, and
Baton needs it to bound what an expression can cost before anything evaluates it
(gates/cel_cost.py). This reader only ever sees expressions the library has already
compiled, so it is built for the grammar's shape (cel-spec's `Expr` productions), not for
error messages: anything it does not recognise raises `SyntaxProblem`, and the caller
refuses the expression rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"
                |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|\d+\.\d+(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?
               |\d+[eE][+-]?\d+|\d+[uU]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%<>!?:.,()\[\]{}])
""", re.VERBOSE)

RELATIONS = ("<", "<=", ">", ">=", "==", "!=", "in")


class SyntaxProblem(ValueError):
    """An expression this reader cannot follow."""


@dataclass(frozen=True)
class Token:
    kind: str  # string | number | name | op | end
    text: str


@dataclass(frozen=True)
class Node:
    """One node of the tree. `kind` is one of: literal (`value` holds the text), ident,
    select (`name` of the field), index, call (`name`, optional `target`), list, map
    (args are key, value, key, value, ...), message (`name`: the type), op (`name`: the
    operator), cond (condition, then, else)."""

    kind: str
    name: str = ""
    args: tuple[Node, ...] = ()
    target: Node | None = None
    value: Any = None


def tokens(source: str) -> list[Token]:
    found: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise SyntaxProblem(f"unexpected character {source[position]!r} at column {position + 1}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            found.append(Token(kind, match.group()))
    found.append(Token("end", ""))
    return found


_ESCAPE = re.compile(r"\\(?:([abfnrtv\\?\"'`])|[xX]([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})"
                     r"|U([0-9a-fA-F]{8})|([0-3][0-7]{2})|(.?))", re.DOTALL)
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _unescaped(match: re.Match[str]) -> str:
    simple, hex2, hex4, hex8, octal, other = match.groups()
    if other is not None:
        raise ValueError(other)
    if simple is not None:
        return _SIMPLE.get(simple, simple)
    return chr(int(hex2 or hex4 or hex8 or "0", 16) if octal is None else int(octal, 8))


def string_value(text: str) -> str | None:
    """The text of a string literal without its quotes, decoded as CEL decodes it (`\\?` is
    `?` in CEL, not in Python), or None when it is bytes or an escape is unknown (the caller
    then assumes the worst)."""
    prefix = re.match(r"[rRbB]*", text).group()  # type: ignore[union-attr]
    if "b" in prefix.lower():
        return None
    body = text[len(prefix):]
    quote = body[:3] if body[:3] in ("'''", '"""') else body[0]
    inner = body[len(quote):-len(quote)]
    if "r" in prefix.lower():
        return inner
    try:
        return _ESCAPE.sub(_unescaped, inner)
    except (ValueError, OverflowError):
        return None


class _Parser:
    def __init__(self, source: str) -> None:
        self.items = tokens(source)
        self.at = 0

    @property
    def current(self) -> Token:
        return self.items[self.at]

    def take(self, text: str | None = None) -> Token:
        token = self.current
        if text is not None and token.text != text:
            raise SyntaxProblem(f"expected {text!r}, found {token.text or 'the end'!r}")
        self.at += 1
        return token

    def accept(self, text: str) -> bool:
        if self.current.kind in ("op", "name") and self.current.text == text:
            self.at += 1
            return True
        return False

    # Expr = ConditionalOr ["?" ConditionalOr ":" Expr]
    def expr(self) -> Node:
        condition = self.binary(0)
        if self.accept("?"):
            then = self.binary(0)
            self.take(":")
            return Node("cond", args=(condition, then, self.expr()))
        return condition

    _LEVELS: tuple[tuple[str, ...], ...] = (("||",), ("&&",), RELATIONS, ("+", "-"),
                                            ("*", "/", "%"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.current.kind in ("op", "name") and self.current.text in self._LEVELS[level]:
            operator = self.take().text
            left = Node("op", operator, (left, self.binary(level + 1)))
        return left

    def unary(self) -> Node:
        if self.current.kind == "op" and self.current.text in ("!", "-"):
            operator = self.take().text
            return Node("op", operator, (self.unary(),))
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                name = self.take()
                if name.kind != "name":
                    raise SyntaxProblem(f"expected a field or method name after '.', found {name.text!r}")
                if self.accept("("):
                    node = Node("call", name.text, self.arguments(")"), target=node)
                else:
                    node = Node("select", name.text, (node,))
            elif self.accept("["):
                index = self.expr()
                self.take("]")
                node = Node("index", args=(node, index))
            else:
                return node

    def arguments(self, close: str) -> tuple[Node, ...]:
        found: list[Node] = []
        while not self.accept(close):
            found.append(self.expr())
            if not self.accept(","):
                self.take(close)
                break
        return tuple(found)

    def entries(self, *, fields: bool) -> tuple[Node, ...]:
        found: list[Node] = []
        while not self.accept("}"):
            if fields:
                name = self.take()
                found.append(Node("literal", value=name.text))
            else:
                found.append(self.expr())
            self.take(":")
            found.append(self.expr())
            if not self.accept(","):
                self.take("}")
                break
        return tuple(found)

    def primary(self) -> Node:
        token = self.current
        if token.kind in ("string", "number"):
            self.take()
            return Node("literal", value=token.text)
        if token.kind == "op" and token.text == "(":
            self.take()
            inner = self.expr()
            self.take(")")
            return inner
        if token.kind == "op" and token.text == "[":
            self.take()
            return Node("list", args=self.arguments("]"))
        if token.kind == "op" and token.text == "{":
            self.take()
            return Node("map", args=self.entries(fields=False))
        if token.kind == "op" and token.text == ".":  # a name from the root scope: `.inputs`
            self.take()
            token = self.current
        if token.kind == "name":
            self.take()
            if token.text in ("true", "false", "null"):
                return Node("literal", value=token.text)
            if self.accept("("):
                return Node("call", token.text, self.arguments(")"))
            name = token.text
            # A message type may be dotted (`google.protobuf.Int64Value{...}`).
            start = self.at
            while self.current.text == "." and self.items[self.at + 1].kind == "name":
                self.at += 2
                name += "." + self.items[self.at - 1].text
            if self.accept("{"):
                return Node("message", name, self.entries(fields=True))
            self.at = start
            return Node("ident", token.text)
        raise SyntaxProblem(f"unexpected {token.text or 'end'!r}")


def parse(source: str) -> Node:
    parser = _Parser(source)
    tree = parser.expr()
    if parser.current.kind != "end":
        raise SyntaxProblem(f"unexpected {parser.current.text!r} after the expression")
    return tree
