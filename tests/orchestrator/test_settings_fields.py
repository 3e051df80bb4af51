"""`from_environment` (what `baton status` reads its settings with) reads what `Settings()`
(pydantic-settings) reads, and refuses what it refuses, in the same words."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.settings import Settings
from orchestrator.settings_fields import from_environment

ENVIRONMENTS: list[dict[str, str]] = [
    {},
    {"DATABASE_URL": "sqlite:///x.db", "BATON_FLOWS": "f", "BATON_ORG": "o.yaml"},
    {"database_url": "postgresql+psycopg://u@h/db", "Baton_Flows": "mixed/case"},
    {"FLOWS": "by-field-name", "ORG": "org-by-name.yaml", "LOG_LEVEL": "debug"},
    {"BATON_FLOWS": "alias-wins", "FLOWS": "name-loses"},
    {"BATON_PYTHON_MODULES": "a, b,,c ", "BATON_LLM_HOSTS": "h1,h2", "BATON_CALLBACK_HOSTS": "cb.example"},
    {"BATON_PYTHON_MODULES": '["json", "looking"]'},
    {"BATON_AGENT_CONCURRENCY": "3", "BATON_TIMER_SWEEP": "0.5", "BATON_MCP_WAIT": "60"},
    {"BATON_LLM_PRICES": "prices.yaml", "BATON_TOKEN": "t", "BATON_URL": "http://x"},
    {"SLACK_BOT_TOKEN": "xoxb-1", "slack_app_token": "xapp-1", "SLACK_SIGNING_SECRET": ""},
    {"BATON_METRICS_TOKEN": ""},
    {"BATON_LLM_PRICES": ""},
    # refused
    {"BATON_KEEP_DELIVERED_DAYS": "0.5"},
    {"BATON_AGENT_CONCURRENCY": "0"},
    {"BATON_AGENT_CONCURRENCY": "many"},
    {"BATON_LOG_FORMAT": "loud"},
    {"BATON_METRICS_TOKEN": "short"},
    {"BATON_CALLBACK_HOSTS": "http://user@host/path"},
    {"BATON_MCP_WAIT": "61", "BATON_TIMER_SWEEP": "-1"},
    {"BATON_LLM_MODEL": ""},
]


def _outcome(read: Callable[[], Any]) -> object:
    try:
        return read().model_dump()
    except ValidationError as exc:
        return str(exc)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_it_reads_and_refuses_as_pydantic_settings_does(environment: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    ours = {name.lower() for name in _ALL_NAMES}
    for name in list(os.environ):  # whatever the test run itself was given
        if name.lower() in ours:
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert _outcome(from_environment) == _outcome(Settings)


_ALL_NAMES = {n for f, info in Settings.model_fields.items() for n in (f, info.alias or f)}


def test_a_dotenv_file_is_left_to_pydantic_settings(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)  # the environment's would win
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///from-dotenv.db\n")
    assert from_environment() is None
    assert Settings().database_url == "sqlite:///from-dotenv.db"
