"""Baton's settings from the environment without pydantic, for `baton status`: pydantic's
import and the settings model's building took half of the command's time.

Each setting's text is taken only where pydantic would read it the same way: a plain number
within its bounds, one of the log formats, a list of names, any text where any text goes.
Any other text (a number written `1e3`, a bound crossed, an empty path), and a `.env` file,
leave the reading to pydantic (`settings_fields.from_environment`): what is refused is then
refused in its words. tests/orchestrator/test_settings_fields.py holds the two equal.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.orgfile import ORG_FILE_NAME

ENV_FILE = ".env"


class _Unsure(Exception):
    """This text is pydantic's to judge."""


def org_path(org: Path, flows: Path) -> Path:
    """BATON_ORG; when the default `org.yaml` is absent, the one inside BATON_FLOWS."""
    if org == Path(ORG_FILE_NAME) and not org.exists():
        candidate = flows / ORG_FILE_NAME
        if candidate.exists():
            return candidate
    return org


@dataclass(frozen=True, kw_only=True)
class EnvironmentSettings:
    """The fields of `SettingsFields`, with the values it would hold."""

    database_url: str = "sqlite:///baton.db"
    flows: Path = Path("flows")
    org: Path = Path(ORG_FILE_NAME)
    python_modules: list[str] = field(default_factory=lambda: ["examples"])
    agent_concurrency: int = 8
    llm_model: str = "gpt-4o-mini"
    llm_prices: Path | None = None
    llm_hosts: list[str] = field(default_factory=list)
    llm_key_envs: list[str] = field(default_factory=list)
    log_format: str = "auto"
    log_level: str = "info"
    timer_sweep_s: float = 15.0
    keep_delivered_days: float = 7.0
    metrics_token: str | None = None
    callback_hosts: list[str] = field(default_factory=list)
    mcp_token: str | None = None
    mcp_url: str | None = None
    mcp_wait_s: float = 45.0
    slack_bot_token: str | None = None
    slack_app_token: str | None = None
    slack_signing_secret: str | None = None
    slack_api_url: str | None = None

    @property
    def org_path(self) -> Path:
        return org_path(self.org, self.flows)


def _text(value: str) -> str:
    return value


def _words(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _path(value: str) -> Path:
    if not value:
        raise _Unsure
    return Path(value)


def _number(low: float, high: float | None = None, *, above: bool = False,
            integer: bool = False) -> Callable[[str], float]:
    shape = r"[1-9][0-9]{0,8}" if integer else r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,9})?"

    def read(value: str) -> float:
        if not re.fullmatch(shape, value):
            raise _Unsure
        number = int(value) if integer else float(value)
        if number < low or (above and number == low) or (high is not None and number > high):
            raise _Unsure
        return number

    return read


def _one_of(*choices: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        if value not in choices:
            raise _Unsure
        return value

    return read


def _model(value: str) -> str:
    if not value:
        raise _Unsure
    return value


def _days(value: str) -> float:
    days = _number(0)(value)
    if 0 < days < 1:  # refused, with the reason, by SettingsFields
        raise _Unsure
    return days


def _metrics_token(value: str) -> str | None:
    if value and (len(value) < 16 or not value.isascii() or not value.isprintable() or " " in value):
        raise _Unsure
    return value or None


def _callback_hosts(value: str) -> list[str]:
    hosts = _words(value)
    if hosts:
        from gates.callbacks import CallbackHostError, parse_allowlist

        try:
            parse_allowlist(hosts)
        except CallbackHostError:
            raise _Unsure from None
    return hosts


# Each field: the environment variable that names it (its alias), and how its text is read
FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "database_url": ("DATABASE_URL", _text),
    "flows": ("BATON_FLOWS", _path),
    "org": ("BATON_ORG", _path),
    "python_modules": ("BATON_PYTHON_MODULES", _words),
    "agent_concurrency": ("BATON_AGENT_CONCURRENCY", _number(1, integer=True)),
    "llm_model": ("BATON_LLM_MODEL", _model),
    "llm_prices": ("BATON_LLM_PRICES", _path),
    "llm_hosts": ("BATON_LLM_HOSTS", _words),
    "llm_key_envs": ("BATON_LLM_KEY_ENVS", _words),
    "log_format": ("BATON_LOG_FORMAT", _one_of("auto", "json", "console")),
    "log_level": ("BATON_LOG_LEVEL", _text),
    "timer_sweep_s": ("BATON_TIMER_SWEEP", _number(0, above=True)),
    "keep_delivered_days": ("BATON_KEEP_DELIVERED_DAYS", _days),
    "metrics_token": ("BATON_METRICS_TOKEN", _metrics_token),
    "callback_hosts": ("BATON_CALLBACK_HOSTS", _callback_hosts),
    "mcp_token": ("BATON_TOKEN", _text),
    "mcp_url": ("BATON_URL", _text),
    "mcp_wait_s": ("BATON_MCP_WAIT", _number(0, 60)),
    "slack_bot_token": ("SLACK_BOT_TOKEN", _text),
    "slack_app_token": ("SLACK_APP_TOKEN", _text),
    "slack_signing_secret": ("SLACK_SIGNING_SECRET", _text),
    "slack_api_url": ("SLACK_API_URL", _text),
}


def read_environment() -> EnvironmentSettings | None:
    """The settings from the environment as `Settings()` reads them (a variable named by a
    field's alias or its name, in any case; the alias first), or None where pydantic is to
    read them: a `.env` file is there, or a value's text is not plainly right."""
    if os.path.exists(ENV_FILE):
        return None
    env = {name.lower(): value for name, value in os.environ.items()}
    given: dict[str, Any] = {}
    for name, (alias, read) in FIELDS.items():
        for key in (alias.lower(), name):
            if key in env:
                try:
                    given[name] = read(env[key])
                except _Unsure:
                    return None
                break
    return EnvironmentSettings(**given)
