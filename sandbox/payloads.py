"""The payloads Slack sends to an app, built from the workspace's records.

Pure functions: the driver (tests) and the sandbox UI both build what Slack would send
when a person types a slash command, clicks a button, picks an option or submits a modal.
"""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.errors import SandboxError
from sandbox.records import JSON, Channel, User, View
from sandbox.workspace import Workspace

# Element type -> the field its chosen value travels in (in actions and in view state).
_SELECTION_FIELD = {
    "static_select": "selected_option", "external_select": "selected_option", "overflow": "selected_option",
    "radio_buttons": "selected_option",
    "multi_static_select": "selected_options", "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "users_select": "selected_user", "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation", "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel", "multi_channels_select": "selected_channels",
    "datepicker": "selected_date", "timepicker": "selected_time", "datetimepicker": "selected_date_time",
    "plain_text_input": "value", "email_text_input": "value", "url_text_input": "value",
    "number_input": "value",
}
_INITIAL_FIELD = {
    "selected_option": "initial_option", "selected_options": "initial_options",
    "selected_user": "initial_user",
    "selected_users": "initial_users", "selected_conversation": "initial_conversation",
    "selected_conversations": "initial_conversations", "selected_channel": "initial_channel",
    "selected_channels": "initial_channels", "selected_date": "initial_date", "selected_time": "initial_time",
    "selected_date_time": "initial_date_time", "value": "initial_value",
}


def user_ref(workspace: Workspace, user: User) -> JSON:
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": workspace.team.id}


def team_ref(workspace: Workspace) -> JSON:
    return {"id": workspace.team.id, "domain": workspace.team.domain}


def channel_ref(channel: Channel) -> JSON:
    return {"id": channel.id, "name": "directmessage" if channel.is_dm else channel.name}


def slash_command(workspace: Workspace, *, user: User, channel: Channel, command: str, text: str,
                  response_url: str, trigger_id: str) -> dict[str, str]:
    """The form fields of a slash command invocation."""
    return {
        "token": workspace.app.verification_token,
        "team_id": workspace.team.id,
        "team_domain": workspace.team.domain,
        "channel_id": channel.id,
        "channel_name": channel_ref(channel)["name"],
        "user_id": user.id,
        "user_name": user.name,
        "command": command,
        "text": text,
        "api_app_id": workspace.app.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def _options(element: JSON) -> list[JSON]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options") or []
    return options


def _option(element: JSON, value: str) -> JSON:
    if element["type"] in ("external_select", "multi_external_select"):
        return {"text": {"type": "plain_text", "text": value}, "value": value}
    for option in _options(element):
        if option.get("value") == value:
            return option
    values = [o.get("value") for o in _options(element)]
    raise SandboxError(f"{element.get('action_id')!r} has no option {value!r}; its options: {values}")


def selection(element: JSON, chosen: Any) -> JSON:
    """The fields saying what was chosen in `element` (e.g. `selected_option`), as Slack sends them."""
    kind = element.get("type", "")
    field = _SELECTION_FIELD.get(kind)
    if field is None:
        return {}
    if field == "selected_option":
        return {field: None if chosen is None else _option(element, str(chosen))}
    if field == "selected_options":
        return {field: [_option(element, str(v)) for v in chosen or []]}
    if kind.startswith("multi_"):
        return {field: list(chosen or [])}
    return {field: chosen}


def initial_choice(element: JSON) -> Any:
    """What an element holds before anyone touches it (its initial_* field), in `selection`'s terms."""
    field = _SELECTION_FIELD.get(element.get("type", ""))
    if field is None:
        return None
    initial = element.get(_INITIAL_FIELD[field])
    if field == "selected_option" and isinstance(initial, dict):
        return initial.get("value")
    if field == "selected_options" and isinstance(initial, list):
        return [o.get("value") for o in initial]
    return initial


def action(block: JSON, element: JSON, *, action_ts: str, chosen: Any = None) -> JSON:
    """One entry of `actions` in a block_actions payload."""
    body: JSON = {"action_id": element.get("action_id"), "block_id": block.get("block_id"),
                  "type": element.get("type"), "action_ts": action_ts}
    if element.get("type") == "button":
        body["text"] = element.get("text")
        if "value" in element:
            body["value"] = element["value"]
        if "style" in element:
            body["style"] = element["style"]
        if "url" in element:
            body["url"] = element["url"]
    else:
        body.update(selection(element, chosen))
        if "placeholder" in element:
            body["placeholder"] = element["placeholder"]
    return body


def input_state(blocks: tuple[JSON, ...], values: dict[str, Any]) -> JSON:
    """A view's `state` with `values` (keyed by block_id or action_id) filled into its inputs.

    Inputs not mentioned keep their initial value; a required input left empty is refused,
    as Slack's client refuses to submit it.
    """
    state: dict[str, JSON] = {}
    unknown = set(values)
    for block in blocks:
        element = block.get("element") if block.get("type") == "input" else None
        if not isinstance(element, dict):
            continue
        block_id, action_id = block.get("block_id"), element.get("action_id")
        key = next((k for k in (block_id, action_id) if k in values), None)
        chosen = values[key] if key is not None else initial_choice(element)
        unknown.discard(key)
        if chosen in (None, "", []) and not block.get("optional", False):
            label = (block.get("label") or {}).get("text", block_id)
            raise SandboxError(f"the input {label!r} ({block_id}/{action_id}) is required")
        state.setdefault(str(block_id), {})[str(action_id)] = {"type": element.get("type"),
                                                                **selection(element, chosen)}
    if unknown:
        raise SandboxError(f"no input block or action_id {sorted(unknown)} in the view")
    return {"values": state}


def block_actions(workspace: Workspace, *, user: User, actions: list[JSON], trigger_id: str,
                  container: JSON, state: JSON, channel: Channel | None = None, message: JSON | None = None,
                  view: View | None = None, response_url: str | None = None) -> JSON:
    payload: JSON = {
        "type": "block_actions",
        "user": user_ref(workspace, user),
        "api_app_id": workspace.app.app_id,
        "token": workspace.app.verification_token,
        "container": container,
        "trigger_id": trigger_id,
        "team": team_ref(workspace),
        "enterprise": None,
        "is_enterprise_install": False,
        "state": state,
        "actions": actions,
    }
    if channel is not None:
        payload["channel"] = channel_ref(channel)
    if message is not None:
        payload["message"] = message
    if view is not None:
        payload["view"] = view.to_api(workspace.team, workspace.app)
    if response_url is not None:
        payload["response_url"] = response_url
    return payload


def view_submission(workspace: Workspace, *, user: User, view: View, trigger_id: str) -> JSON:
    return {
        "type": "view_submission",
        "team": team_ref(workspace),
        "user": user_ref(workspace, user),
        "api_app_id": workspace.app.app_id,
        "token": workspace.app.verification_token,
        "trigger_id": trigger_id,
        "view": view.to_api(workspace.team, workspace.app),
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }


def view_closed(workspace: Workspace, *, user: User, view: View, is_cleared: bool) -> JSON:
    return {
        "type": "view_closed",
        "team": team_ref(workspace),
        "user": user_ref(workspace, user),
        "api_app_id": workspace.app.app_id,
        "token": workspace.app.verification_token,
        "view": view.to_api(workspace.team, workspace.app),
        "is_cleared": is_cleared,
        "is_enterprise_install": False,
        "enterprise": None,
    }


def event_callback(workspace: Workspace, event: JSON, *, event_id: str, event_time: int) -> JSON:
    """The Events API envelope around `event`."""
    return {
        "token": workspace.app.verification_token,
        "team_id": workspace.team.id,
        "api_app_id": workspace.app.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": event_time,
        "authorizations": [{"enterprise_id": None, "team_id": workspace.team.id,
                            "user_id": workspace.app.bot_user_id, "is_bot": True,
                            "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": f"4-{uuid.uuid4().hex}",
    }


def url_verification(workspace: Workspace, challenge: str) -> JSON:
    return {"token": workspace.app.verification_token, "challenge": challenge, "type": "url_verification"}
