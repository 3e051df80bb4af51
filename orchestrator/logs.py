"""structlog, configured once: readable in a terminal, JSON lines in production, with
run / flow / step / gate ids bound through contextvars."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

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
