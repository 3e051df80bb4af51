"""Reading Baton's source for the kinds it names: the tests that hold every emitted event
kind to its handler, and every recorded trace kind to its words, share this."""

from __future__ import annotations

import ast


def literals(node: ast.expr) -> list[str]:
    """The strings an argument can be: `"a"`, `"a" if ... else "b"`, or
    `{"failed": "run_failed", ...}.get(status, "run_finished")`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return literals(node.body) + literals(node.orelse)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "get" and isinstance(node.func.value, ast.Dict):
        return [v for part in (*node.func.value.values, *node.args[1:]) for v in literals(part)]
    return []
