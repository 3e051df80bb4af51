"""Durations as people write them in flow files and commands: `30s`, `15m`, `1h30m`, `2d`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float) -> timedelta:
    """Parse `1h30m` into a timedelta; plain numbers are seconds."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 30m or 2h, got {text!r}")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        value = str(text).strip().lower().replace(" ", "")
        if not value or _PART.sub("", value):
            raise ValueError(f"expected a duration like 45s, 30m, 2h or 1d, got {text!r}")
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"expected a duration like 30m or 2h, got {text!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {text}")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too long") from None


def format_duration(delta: timedelta) -> str:
    """`timedelta(minutes=90)` -> `1h30m`; the inverse of parse_duration for whole seconds."""
    seconds = round(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
