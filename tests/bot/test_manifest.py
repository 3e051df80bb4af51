"""manifest.yaml creates the Slack app as is: it must satisfy Slack's manifest schema."""

import json
from pathlib import Path

import jsonschema
import yaml

from tests.conftest import ROOT

SCHEMA = ROOT.parent / "shared" / "slack" / "manifest.schema.1.0.0.json"


def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yaml").read_text())


def test_manifest_validates_against_slacks_schema() -> None:
    schema_path = SCHEMA if SCHEMA.exists() else Path(__file__).parent / "manifest.schema.1.0.0.json"
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft7Validator(schema).validate(manifest())


def test_manifest_declares_what_the_bot_uses() -> None:
    data = manifest()
    assert [c["command"] for c in data["features"]["slash_commands"]] == ["/baton"]
    assert data["features"]["app_home"]["home_tab_enabled"] is True
    assert set(data["settings"]["event_subscriptions"]["bot_events"]) == {
        "app_mention", "message.im", "app_home_opened"}
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert data["settings"]["socket_mode_enabled"] is True
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "commands", "app_mentions:read", "im:history", "im:write",
            "usergroups:read"} <= scopes
