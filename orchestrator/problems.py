"""Pydantic's validation errors as problems that point into the YAML file: the path inside
the file as written, its line, and a message that names the key (flow files and the org file
alike)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import Problem
from orchestrator.yamlfile import YamlDoc


def vocabulary(*models: type[BaseModel]) -> set[str]:
    words: set[str] = set()
    for model in models:
        for name, info in model.model_fields.items():
            words.add(info.alias or name)
    return words


def _data_path(data: Any, loc: tuple) -> tuple:
    """Pydantic locations include union tags (`rules`, `function-after`); keep only the
    parts that exist in the data, so the path and line point into the file."""
    path: list[Any] = []
    current = data
    for part in loc:
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and part < len(current)
        if in_dict or in_list:
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str) and part == loc[-1]:
            path.append(part)  # a missing or unknown key: keep it so the message names it
            current = None
    return tuple(path)


def _message(error: dict[str, Any], vocabulary: set[str]) -> str:
    kind = error["type"]
    key = error["loc"][-1] if error["loc"] else ""
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(key), sorted(vocabulary), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return f"{key!r} is required"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if "input" in error and kind not in ("value_error",) and not isinstance(
            error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return message


def validation_problems(doc: YamlDoc, exc: ValidationError,
                        vocabulary: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple] = set()
    for error in exc.errors():
        path = _data_path(doc.data, tuple(error["loc"]))
        message = _message(error, vocabulary)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        problems.append(doc.problem(path, message))
    return problems
