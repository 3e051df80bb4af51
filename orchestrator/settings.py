"""Configuration from the environment and `.env` (names fixed by SPEC section 5; the fields
and their checks: orchestrator/settings_fields.py)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.settings_fields import ENV_FILE, SettingsFields


class Settings(SettingsFields, BaseSettings):
    # The lists are comma-separated text (SettingsFields splits them), never JSON.
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", populate_by_name=True,
                                      enable_decoding=False)
