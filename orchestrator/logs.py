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


def configure_logging(fmt: Literal["auto", "json", "console"] = "auto", level: str = "info",
                      stream: TextIO | None = None) -> None:
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
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
