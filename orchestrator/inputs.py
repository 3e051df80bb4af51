"""Run inputs: typed, checked against the flow's declarations, with errors that say which
input is wrong and what it should look like."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from orchestrator.errors import InputError
from orchestrator.spec import Flow, InputSpec
from orchestrator.text import well_formed

_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def coerce(spec: InputSpec, value: Any, name: str) -> Any:
    """Turn `value` (a string from a command line, or a YAML/JSON value) into the type
    the input declares. Raises ValueError with a message naming `name`."""
    if spec.type == "boolean":
        if isinstance(value, bool):
            result: Any = value
        elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            result = value.strip().lower() in _TRUE
        else:
            raise ValueError(f"{name}: expected true or false, got {value!r}")
    elif spec.type == "integer":
        if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, str) and _INTEGER.match(value.strip()))):
            raise ValueError(f"{name}: expected a whole number such as 42, got {value!r}")
        try:
            result = int(value)
        except ValueError:  # Python reads at most 4,300 digits
            raise ValueError(f"{name}: expected a whole number such as 42, got one of "
                             f"{len(value.strip()):,} digits") from None
    elif spec.type == "number":
        if isinstance(value, bool) or not (
                isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value.strip()))):
            raise ValueError(f"{name}: expected a number such as 20000 or 1234.5 (no thousands "
                             f"separators), got {value!r}")
        result = float(value)
        if not math.isfinite(result):
            raise ValueError(f"{name}: expected a finite number, got {value!r}")
    else:
        if not isinstance(value, str):
            if isinstance(value, bool | int | float):
                value = str(value)
            else:
                raise ValueError(f"{name}: expected text, got {type(value).__name__}")
        result = _clean_text(value)
        if len(result) > spec.max_length:
            raise ValueError(f"{name}: at most {spec.max_length} characters, got {len(result)}")
    if spec.choices is not None and result not in spec.choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(str, spec.choices))}, "
                         f"got {value!r}")
    if isinstance(result, int | float) and not isinstance(result, bool):
        if spec.min is not None and result < spec.min:
            raise ValueError(f"{name}: must be at least {spec.min:g}, got {result:g}")
        if spec.max is not None and result > spec.max:
            raise ValueError(f"{name}: must be at most {spec.max:g}, got {result:g}")
    return result


def _clean_text(value: str) -> str:
    """Drop control characters other than newline and tab: they break renderers and logs.
    Invalid UTF-8 (lone surrogates, as Python decodes undecodable bytes in argv or JSON's
    `\\udcff`) becomes U+FFFD: such text cannot be encoded, so cannot be stored or traced."""
    return well_formed("".join(ch for ch in value if ch in "\n\t" or unicodedata.category(ch) != "Cc"))


def usage(flow: Flow) -> str:
    """How to start `flow`, without the program: `run vendor-payment vendor=TEXT amount=NUMBER`."""
    parts = []
    for name, spec in flow.inputs.items():
        example = {"string": "TEXT", "number": "NUMBER", "integer": "N",
                   "boolean": "true|false"}[spec.type]
        if spec.choices:
            example = "|".join(map(str, spec.choices))
        part = f"{name}={example}"
        parts.append(part if spec.required else f"[{part}]")
    return f"run {flow.name} " + " ".join(parts)


def check_inputs(flow: Flow, given: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The typed inputs with defaults applied, and each problem as (input name, message)."""
    problems: list[tuple[str, str]] = []
    result: dict[str, Any] = {}
    for name, value in given.items():
        spec = flow.inputs.get(name)
        if spec is None:
            known = ", ".join(flow.inputs) or "none"
            problems.append((name, f"unknown input {name!r}; {flow.name} takes: {known}"))
            continue
        try:
            result[name] = coerce(spec, value, name)
        except ValueError as exc:
            problems.append((name, str(exc)))
    for name, spec in flow.inputs.items():
        if name in given or name in result:
            continue  # given, and refused above if it did not fit: not missing as well
        if spec.default is not None:
            result[name] = coerce(spec, spec.default, name)
        elif spec.required:
            problems.append((name, f"missing required input {name!r}"))
    return result, problems


def parse_inputs(flow: Flow, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check `given` against the flow; return the typed inputs with defaults applied."""
    result, problems = check_inputs(flow, given)
    if problems:
        raise InputError("\n".join(message for _, message in problems), fields=problems,
                         usage=usage(flow))
    return result


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`["vendor=ACME", "note=two words"]` -> {"vendor": "ACME", "note": "two words"}.
    The value is everything after the first `=`, so values may contain `=`."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"{item!r}: expected key=value, for example amount=20000")
        if key in result:
            raise InputError(f"{key!r} is given twice")
        result[key] = value
    return result
