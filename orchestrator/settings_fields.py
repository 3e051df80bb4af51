"""Baton's settings: their names (fixed by SPEC section 5), defaults and checks, apart from
where they are read from. `Settings` (orchestrator/settings.py) reads them from the
environment and `.env` with pydantic-settings; `from_environment` reads them the same way
without importing it, where `baton status` cannot read them without pydantic
(orchestrator/settings_env.py): tests/orchestrator/test_settings_fields.py holds the three equal.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.orgfile import ORG_FILE_NAME
from orchestrator.settings_env import ENV_FILE, org_path

if TYPE_CHECKING:  # `baton status` reads settings and needs no flow file's reach
    from orchestrator.reach import Reach

def _no_entries() -> list[str]:
    # written in Python: pydantic inspects a default factory's signature, and a builtin's
    # (`list`) is parsed from text, with the tokenizer (10 ms of `baton status`)
    return []


class SettingsFields(BaseModel):
    # as BaseSettings validates: defaults too; the title is the one its errors name
    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_default=True,
                              title="Settings")

    database_url: str = Field("sqlite:///baton.db", alias="DATABASE_URL")
    flows: Path = Field(Path("flows"), alias="BATON_FLOWS")
    org: Path = Field(Path(ORG_FILE_NAME), alias="BATON_ORG")
    python_modules: list[str] = Field(
        default_factory=lambda: ["examples"], alias="BATON_PYTHON_MODULES")
    agent_concurrency: int = Field(8, ge=1, alias="BATON_AGENT_CONCURRENCY")
    # llm agents: the model where a flow names none, and the price table (docs/llm.md).
    # The server and key are the openai client's own OPENAI_BASE_URL and OPENAI_API_KEY.
    llm_model: str = Field("gpt-4o-mini", min_length=1, alias="BATON_LLM_MODEL")
    llm_prices: Path | None = Field(None, alias="BATON_LLM_PRICES")
    # What flow files may reach (orchestrator/reach.py, docs/security.md): servers besides
    # OPENAI_BASE_URL's, and key variables besides OPENAI_API_KEY.
    llm_hosts: list[str] = Field(default_factory=_no_entries, alias="BATON_LLM_HOSTS")
    llm_key_envs: list[str] = Field(default_factory=_no_entries,
                                                         alias="BATON_LLM_KEY_ENVS")
    log_format: Literal["auto", "json", "console"] = Field("auto", alias="BATON_LOG_FORMAT")
    log_level: str = Field("info", alias="BATON_LOG_LEVEL")
    timer_sweep_s: float = Field(15.0, gt=0, alias="BATON_TIMER_SWEEP",
                                 description="how often each replica looks for due timers, "
                                             "interrupted runs and timers other processes wrote")
    keep_delivered_days: float = Field(
        7.0, ge=0, alias="BATON_KEEP_DELIVERED_DAYS",
        description="days sent Slack calls, handled Slack requests and delivered events are "
                    "kept (0: for good)")

    metrics_token: str | None = Field(
        None, alias="BATON_METRICS_TOKEN",
        description="when set, GET /metrics requires `Authorization: Bearer <this token>`")
    callback_hosts: list[str] = Field(
        default_factory=_no_entries, alias="BATON_CALLBACK_HOSTS",
        description="hosts API callers' callback_url may name: host, host:port, http://host "
                    "(plain HTTP allowed); comma-separated")

    # `baton mcp` (docs/mcp.md): the API token it acts with, the `baton serve` it asks (none:
    # the local database), and how long a tool call waits for people before answering
    # "pending" (under the 60 s many MCP clients allow a call).
    mcp_token: str | None = Field(None, alias="BATON_TOKEN")
    mcp_url: str | None = Field(None, alias="BATON_URL")
    mcp_wait_s: float = Field(45.0, ge=0, le=60, alias="BATON_MCP_WAIT")

    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_app_token: str | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_signing_secret: str | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_api_url: str | None = Field(None, alias="SLACK_API_URL")

    @field_validator("python_modules", "llm_hosts", "llm_key_envs", "callback_hosts",
                     mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("callback_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        if not value:  # the default: nothing to check, nor to import
            return value
        from gates.callbacks import parse_allowlist

        parse_allowlist(value)  # raises CallbackHostError (a ValueError) naming the entry
        return value

    @field_validator("keep_delivered_days")
    @classmethod
    def _past_slack_retries(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("BATON_KEEP_DELIVERED_DAYS must be 0 (keep for good) or at least 1: "
                             "Slack delivers a request again up to an hour later, and the row "
                             "is how Baton recognises it")
        return value

    def reach(self) -> Reach:
        """What flow files may reach, from these settings."""
        from orchestrator.reach import Reach

        return Reach.of(self.llm_hosts, self.llm_key_envs,
                        own_values=(self.slack_bot_token, self.slack_app_token,
                                    self.slack_signing_secret, self.database_url,
                                    self.metrics_token, self.mcp_token))

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, value: str | None) -> str | None:
        if value is not None and value != "" and (len(value) < 16 or not value.isascii()
                                                  or not value.isprintable() or " " in value):
            raise ValueError("BATON_METRICS_TOKEN must be at least 16 printable ASCII characters "
                             "without spaces (e.g. `openssl rand -hex 32`)")
        return value or None

    @property
    def org_path(self) -> Path:
        """BATON_ORG; when the default `org.yaml` is absent, the one inside BATON_FLOWS."""
        return org_path(self.org, self.flows)


def from_environment() -> SettingsFields | None:
    """The settings from the environment, as `Settings()` reads them (an environment
    variable named by a field's alias or its name, in any case; the alias first), without
    pydantic-settings; None when a `.env` file is there to read (then `Settings()` reads it,
    with python-dotenv's rules). Raises pydantic's ValidationError as `Settings()` does."""
    if os.path.exists(ENV_FILE):
        return None
    env = {name.lower(): value for name, value in os.environ.items()}
    given: dict[str, Any] = {}
    for name, field in SettingsFields.model_fields.items():
        for key in (field.alias, name) if field.alias else (name,):
            if key.lower() in env:
                given[key] = env[key.lower()]
                break
    return SettingsFields.model_validate(given)
