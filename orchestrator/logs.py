"""structlog, configured once: readable in a terminal, JSON lines in production, with
run / flow / step / gate ids bound through contextvars."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog

SECRET_KEYS = ("token", "secret", "password", "authorization", "api_key")


def _redact(_logger: object, _name: str, event: dict) -> dict:
    for key in list(event):
        if any(word in key.lower() for word in SECRET_KEYS):
            event[key] = "[redacted]"
    return event


class _StderrLogger:
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(message + "\n")
            stream.flush()
        except ValueError:  # closed: logging must never break the work it describes
            pass

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def configure_logging(fmt: Literal["auto", "json", "console"] = "auto", level: str = "info",
                      stream: TextIO | None = None) -> None:
    target = stream
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console"
        else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)),
        logger_factory=lambda *_: _StderrLogger(target),
        cache_logger_on_first_use=False,
    )


class log_context:
    """Bind `kw` to the logs of this context (structlog's contextvars) for the block, then
    put back what was bound before: `structlog.contextvars.bound_contextvars`, restored by
    the tokens of the variables it set rather than by a copy of the whole context taken on
    the way in. The engine binds the run and the step around every step."""

    __slots__ = ("_kw", "_tokens")

    def __init__(self, **kw: Any) -> None:
        self._kw = kw

    def __enter__(self) -> None:
        self._tokens = structlog.contextvars.bind_contextvars(**self._kw)

    def __exit__(self, *_exc: object) -> None:
        structlog.contextvars.reset_contextvars(**self._tokens)
