"""storage/ owns every SQL statement (issue 25): orchestrator/, gates/ and bot/ call
intent-named storage functions and work on records. Read from the source's syntax tree,
so a word in a docstring or a Block Kit `static_select` does not count, and any new
statement outside storage/ does."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "gates", "bot")

# Files allowed to still reach for the ORM while someone moves their SQL into storage/:
# path -> why, and who moves it. Empty: every file is clean, and a new statement outside
# storage/ fails the first test below. An entry goes once its file is clean (the second
# test says when).
NOT_YET: dict[str, str] = {}
# Calls named like SQL that are not: (file, the call's source text).
NOT_SQL = {
    ("gates/conditions.py", "self.program.execute"),  # a compiled CEL program, run on its context
}
FORBIDDEN_MODULES = ("sqlalchemy", "sqlmodel", "storage.rows")
FORBIDDEN_CALLS = ("select", "execute", "exec", "scalars", "scalar")


def _problems(path: Path) -> list[str]:
    relative = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
        where = f"{relative}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom) and node.module == "storage":
                names += [f"storage.{alias.name}" for alias in node.names]
            for name in names:
                if any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES):
                    found.append(f"{where} imports {name}")
        elif isinstance(node, ast.Attribute) and node.attr == "__table__":
            found.append(f"{where} reads a model's __table__")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else None
            if name in FORBIDDEN_CALLS and (relative, ast.unparse(func)) not in NOT_SQL:
                found.append(f"{where} calls {ast.unparse(func)}(...)")
    return found


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_sql_outside_storage() -> None:
    problems = [problem for path in _sources()
                if path.relative_to(ROOT).as_posix() not in NOT_YET
                for problem in _problems(path)]
    assert not problems, ("SQL outside storage/: put the statement behind an intent-named "
                          "function in storage/ and call that\n" + "\n".join(problems))


def test_the_files_not_yet_moved_are_still_listed_for_a_reason() -> None:
    """An exemption outlives its reason silently; this says when to delete it."""
    gone = [name for name in NOT_YET if not (ROOT / name).is_file()]
    assert not gone, f"{gone} no longer exist: delete them from NOT_YET"
    clean = [name for name in NOT_YET if not _problems(ROOT / name)]
    assert not clean, f"no SQL left in {clean}: delete them from NOT_YET"


def test_the_check_sees_sql() -> None:
    """The checker finds what it is for (it would pass vacuously on a tree it cannot read)."""
    assert _sources(), "no sources found"
    sample = ROOT / "storage" / "slack.py"
    assert any("imports sqlalchemy" in p for p in _problems(sample))
    assert any("__table__" in p for p in _problems(sample))
    assert any("execute(" in p for p in _problems(sample))
