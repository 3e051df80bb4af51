"""`from_environment` (what `baton status` reads its settings with where pydantic must judge
them) reads what `Settings()` (pydantic-settings) reads, and refuses what it refuses, in the
same words; `read_environment` (what it reads them with, without pydantic) reads the same
values, or leaves them to pydantic."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.settings import Settings
from orchestrator.settings_env import FIELDS, EnvironmentSettings, read_environment
from orchestrator.settings_fields import SettingsFields, from_environment

READ_PLAINLY: list[dict[str, str]] = [  # read without pydantic
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
    {"BATON_METRICS_TOKEN": "0123456789abcdef", "BATON_KEEP_DELIVERED_DAYS": "0",
     "BATON_LOG_FORMAT": "json", "BATON_MCP_WAIT": "0.25"},
]
LEFT_TO_PYDANTIC: list[dict[str, str]] = [
    {"BATON_LLM_PRICES": ""},
    {"BATON_AGENT_CONCURRENCY": " 3", "BATON_TIMER_SWEEP": "1e1"},
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
ENVIRONMENTS = READ_PLAINLY + LEFT_TO_PYDANTIC


def _outcome(read: Callable[[], Any]) -> object:
    try:
        return read().model_dump()
    except ValidationError as exc:
        return str(exc)


def _only(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    ours = {name.lower() for name in _ALL_NAMES}
    for name in list(os.environ):  # whatever the test run itself was given
        if name.lower() in ours:
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_it_reads_and_refuses_as_pydantic_settings_does(environment: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    _only(environment, monkeypatch)
    assert _outcome(from_environment) == _outcome(Settings)
    plain = read_environment()
    if environment in READ_PLAINLY:
        assert plain is not None and asdict(plain) == _outcome(from_environment)
    else:
        assert plain is None


def test_the_plain_reader_has_every_field_its_name_and_its_default() -> None:
    assert {name: alias for name, (alias, _) in FIELDS.items()} == {
        name: info.alias for name, info in SettingsFields.model_fields.items()}
    assert asdict(EnvironmentSettings()) == SettingsFields.model_validate({}).model_dump()


_TEXTS = st.one_of(
    st.sampled_from(["", " ", "0", "1", "3", "60", "61", "0.5", "1.0", "15", " 3", "3 ", "+3", "-1",
                     "007", "1_000", "1e3", "inf", "nan", "3.", ".5", "0.0000000001", "\u0663",
                     "auto", "json", "JSON", "console", "a,b", " a , ,b", "http://h", "h:99999",
                     "user@h", "0123456789abcdef", "0123456789abcde", "0123456789 abcdef"]),
    st.text(max_size=20))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(sorted(alias for alias, _ in FIELDS.values())), _TEXTS,
                       max_size=4))
def test_any_text_is_read_as_pydantic_reads_it_or_left_to_pydantic(
        tmp_path: Path, environment: dict[str, str]) -> None:
    environment = {name: value.replace("\x00", "") for name, value in environment.items()}
    clean = {name: value for name, value in os.environ.items() if name.lower() not in
             {n.lower() for n in _ALL_NAMES}}
    with mock.patch.dict(os.environ, {**clean, **environment}, clear=True):
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            plain, judged = read_environment(), _outcome(from_environment)
        finally:
            os.chdir(cwd)
    if plain is not None:
        assert asdict(plain) == judged, environment


_ALL_NAMES = {n for f, info in Settings.model_fields.items() for n in (f, info.alias or f)}


def test_a_dotenv_file_is_left_to_pydantic_settings(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)  # the environment's would win
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///from-dotenv.db\n")
    assert from_environment() is None
    assert Settings().database_url == "sqlite:///from-dotenv.db"
