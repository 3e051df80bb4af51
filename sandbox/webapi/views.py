"""views.*: modals (open, push, update) and the App Home tab (publish)."""

from __future__ import annotations

from typing import Any

from sandbox.blockkit import view_errors
from sandbox.errors import ApiError
from sandbox.records import JSON
from sandbox.webapi.base import ApiRequest, invalid, method


def _view(req: ApiRequest, *, kind: str | None) -> dict[str, Any]:
    view = req.args.json("view", "invalid_arguments")
    if view is None:
        raise invalid("invalid_arguments", ["missing required field: view [json-pointer:/view]"])
    problems = view_errors(view)
    if not problems and kind is not None and view.get("type") != kind:
        problems = [f"must be a {kind} view [json-pointer:/view/type]"]
    if problems:
        raise invalid("invalid_arguments", problems)
    return view


def _show(req: ApiRequest, view_id: str) -> JSON:
    ws = req.workspace
    return {"view": ws.view(view_id).to_api(ws.team, ws.app)}


@method("views.open")
def views_open(req: ApiRequest) -> JSON:
    trigger_id = req.args.require("trigger_id", "invalid_trigger_id")
    view = _view(req, kind="modal")
    trigger = req.workspace.exchange_trigger(trigger_id)
    return _show(req, req.workspace.open_modal(trigger.user, view).id)


@method("views.push")
def views_push(req: ApiRequest) -> JSON:
    trigger_id = req.args.require("trigger_id", "invalid_trigger_id")
    view = _view(req, kind="modal")
    trigger = req.workspace.exchange_trigger(trigger_id)
    return _show(req, req.workspace.open_modal(trigger.user, view, push=True).id)


@method("views.update")
def views_update(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    if "view_id" in args:
        current = ws.view(args.require("view_id", "not_found"))
    elif "external_id" in args:
        current = ws.view_by_external_id(args.require("external_id", "not_found"))
    else:
        raise ApiError("not_found")
    view = _view(req, kind=current.type)
    return _show(req, ws.update_view(current.id, view, hash=args.text("hash") or None).id)


@method("views.publish")
def views_publish(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    user = ws.user(args.require("user_id", "user_not_found"))
    view = _view(req, kind="home")
    return _show(req, ws.publish_home(user.id, view, hash=args.text("hash") or None).id)
