"""conversations.*, users.*, usergroups.*, auth.test and apps.connections.open."""

from __future__ import annotations

import secrets

from sandbox.errors import ApiError
from sandbox.records import JSON
from sandbox.webapi.base import ApiRequest, method, paginate


@method("auth.test")
def auth_test(req: ApiRequest) -> JSON:
    ws = req.workspace
    return {"url": f"https://{ws.team.domain}.slack.com/", "team": ws.team.name, "user": ws.app.bot_name,
            "team_id": ws.team.id, "user_id": ws.app.bot_user_id, "bot_id": ws.app.bot_id,
            "is_enterprise_install": False}


@method("apps.connections.open", token_type="app")
def connections_open(req: ApiRequest) -> JSON:
    ws_url = "ws" + req.base_url.removeprefix("http")
    ticket = secrets.token_hex(8)
    return {"url": f"{ws_url}/socket-mode/link?ticket={ticket}&app_id={req.workspace.app.app_id}"}


@method("conversations.open")
def conversations_open(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    if "channel" in args:
        channel = ws.channel(args.require("channel", "channel_not_found"))
        existed = True
    else:
        users = [u.strip() for u in (args.text("users") or "").split(",") if u.strip()]
        if not users:
            raise ApiError("users_list_not_supplied")
        if len(users) > 8:
            raise ApiError("too_many_users")
        if len(users) == 1:
            existed = ws.dm_of(users[0]) is not None
            channel = ws.open_dm(users[0])
        else:
            before = {c.id for c in ws.channels()}
            channel = ws.open_group_dm(users)
            existed = channel.id in before
    body: JSON = {"channel": channel.to_api() if args.flag("return_im") else {"id": channel.id}}
    if existed:
        body.update({"no_op": True, "already_open": True})
    return body


@method("conversations.info")
def conversations_info(req: ApiRequest) -> JSON:
    ws = req.workspace
    return {"channel": ws.channel(req.args.require("channel", "channel_not_found")).to_api()}


@method("conversations.list")
def conversations_list(req: ApiRequest) -> JSON:
    types = {t.strip() for t in (req.args.text("types") or "public_channel").split(",")}
    kinds = {"public_channel": "channel", "private_channel": "private", "im": "im", "mpim": "mpim"}
    wanted = {kinds[t] for t in types if t in kinds}
    channels = [c.to_api() for c in req.workspace.channels() if c.kind in wanted]
    page, cursor = paginate(channels, req.args)
    return {"channels": page, "response_metadata": {"next_cursor": cursor}}


@method("conversations.history")
def conversations_history(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    channel = ws.channel(args.require("channel", "channel_not_found"))
    oldest, latest = float(args.text("oldest") or 0), float(args.text("latest") or "inf")
    inclusive = args.flag("inclusive")
    metadata = args.flag("include_all_metadata")

    def in_range(ts: str) -> bool:
        value = float(ts)
        return (oldest <= value <= latest) if inclusive else (oldest < value < latest)

    found = [m for m in reversed(ws.messages(channel.id, include_replies=False)) if in_range(m.ts)]
    page, cursor = paginate(found, args)
    return {"messages": [ws.message_to_api(m, with_metadata=metadata) for m in page],
            "has_more": bool(cursor), "pin_count": 0, "response_metadata": {"next_cursor": cursor}}


@method("conversations.replies")
def conversations_replies(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    channel = ws.channel(args.require("channel", "channel_not_found"))
    try:
        thread = ws.replies(channel.id, args.require("ts", "thread_not_found"))
    except ApiError as error:
        raise ApiError("thread_not_found") from error
    page, cursor = paginate(thread, args, default_limit=1000)
    metadata = args.flag("include_all_metadata")
    return {"messages": [ws.message_to_api(m, with_metadata=metadata) for m in page],
            "has_more": bool(cursor), "response_metadata": {"next_cursor": cursor}}


@method("users.info")
def users_info(req: ApiRequest) -> JSON:
    ws = req.workspace
    return {"user": ws.user(req.args.require("user", "user_not_found")).to_api(ws.team)}


@method("users.list")
def users_list(req: ApiRequest) -> JSON:
    ws = req.workspace
    page, cursor = paginate([u.to_api(ws.team) for u in ws.users()], req.args, default_limit=200)
    return {"members": page, "cache_ts": int(ws.clock()), "response_metadata": {"next_cursor": cursor}}


@method("users.lookupByEmail")
def users_lookup_by_email(req: ApiRequest) -> JSON:
    ws = req.workspace
    email = req.args.require("email", "users_not_found").lower()
    user = next((u for u in ws.users() if u.email and u.email.lower() == email), None)
    if user is None:
        raise ApiError("users_not_found")
    return {"user": user.to_api(ws.team)}


@method("usergroups.list")
def usergroups_list(req: ApiRequest) -> JSON:
    ws = req.workspace
    groups = []
    for group in ws.usergroups():
        body = group.to_api(ws.team)
        if not req.args.flag("include_users"):
            body.pop("users")
        groups.append(body)
    return {"usergroups": groups}


@method("usergroups.users.list")
def usergroups_users_list(req: ApiRequest) -> JSON:
    group = req.workspace.usergroup(req.args.require("usergroup", "no_such_subteam"))
    return {"users": list(group.members)}
