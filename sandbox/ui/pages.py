"""The pieces of the sandbox page, drawn for one viewer: the sidebar, a conversation, a
thread, the App Home tab, the open modal, and the log of Web API calls.

Pure functions of the workspace (read under its lock, one record at a time): the page's
script asks for them again whenever the workspace changes, and swaps in what differs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sandbox.errors import ApiError
from sandbox.records import Channel, Ephemeral, Message, View
from sandbox.ui.blocks import Surface, blocks_html, text_html
from sandbox.ui.mrkdwn import Names, esc, mrkdwn_html
from sandbox.workspace import Workspace

HOME = "home"  # the App Home tab
DM = "dm"      # the viewer's DM with the app (its Messages tab)


def names(ws: Workspace, viewer: str | None) -> Names:
    def user(user_id: str) -> str | None:
        found = ws.find_user(user_id)
        return (found.real_name or found.name) if found else None

    def channel(channel_id: str) -> str | None:
        found = ws.find_channel(channel_id)
        return found.name if found and not found.is_dm else None

    def group(group_id: str) -> str | None:
        return next((g.handle for g in ws.usergroups() if g.id == group_id), None)

    return Names(user=user, channel=channel, group=group, viewer=viewer)


def surface(ws: Workspace, viewer: str | None, view: View | None = None) -> Surface:
    people = [(u.id, u.real_name or u.name) for u in ws.users() if not u.is_bot]
    places = [(c.id, f"#{c.name}") for c in ws.channels() if c.kind in ("channel", "private")]
    return Surface(names=names(ws, viewer), users=people, channels=places,
                   state=view.state if view else {}, errors=(view.errors or {}) if view else {})


def people(ws: Workspace) -> list[dict[str, str]]:
    """Who one can be in the sandbox: everyone but the bot, with their roles as a title."""
    return [{"id": u.id, "name": u.name, "real_name": u.real_name or u.name, "title": u.title}
            for u in ws.users() if not u.is_bot]


def resolve_place(ws: Workspace, viewer: str, place: str | None) -> tuple[str, Channel | None]:
    """(place, its channel): a channel id or name, `dm` (the viewer's DM with the app) or `home`."""
    if place == HOME:
        return HOME, None
    if place == DM:
        return DM, ws.dm_of(viewer)
    channel = ws.find_channel(place) if place else None
    if channel is not None and channel.is_dm:
        # someone else's DM is not the viewer's to read; their own is the Messages tab
        return DM, ws.dm_of(viewer)
    if channel is None or (channel.kind == "mpim" and viewer not in channel.members):
        channel = _default_channel(ws)
    return (channel.id if channel else HOME), channel


def _default_channel(ws: Workspace) -> Channel | None:
    channels = [c for c in ws.channels() if c.kind == "channel"]
    return next((c for c in channels if c.name != "general"), channels[0] if channels else None)


def _clock(ts: str) -> str:
    return datetime.fromtimestamp(float(ts)).strftime("%H:%M:%S")


def _author(ws: Workspace, user_id: str | None, bot_id: str | None) -> tuple[str, bool]:
    if bot_id or user_id == ws.app.bot_user_id:
        return ws.app.bot_name, True
    found = ws.find_user(user_id or "")
    return ((found.real_name or found.name) if found else (user_id or "someone")), False


# What the bytes of an image say they are (the file's name is the uploader's word, not proof).
_IMAGES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
           (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def image_type(content: bytes | None) -> str | None:
    """The media type of an image the page may show; None for anything else."""
    return next((media for magic, media in _IMAGES if content and content.startswith(magic)), None)


def _file_html(ws: Workspace, file: dict[str, Any]) -> str:
    """A shared file as Slack shows it: an image inline, anything else as a named box."""
    title = esc(str(file.get("title") or file.get("name")))
    size = file.get("size")
    try:
        stored = ws.file(str(file.get("id", "")))
    except ApiError:
        stored = None
    if stored is not None and image_type(stored.content):
        return (f'<figure class="file image"><img src="/_ui/files/{esc(stored.id)}" alt="{title}" '
                f'loading="lazy"><figcaption>{title}</figcaption></figure>')
    return (f'<div class="file">\U0001f4c4 {title}'
            f'{f" · {size} bytes" if size is not None else ""}</div>')


def _content(ws: Workspace, text: str, blocks: Sequence[Any], files: Sequence[Any], viewer: str) -> str:
    shown = surface(ws, viewer)
    body = blocks_html(blocks, shown) if blocks else \
        f'<div class="text">{mrkdwn_html(text, shown.names)}</div>' if text else ""
    for file in files:
        if isinstance(file, dict):
            body += _file_html(ws, file)
    return body


def message_html(ws: Workspace, message: Message, viewer: str, *, thread_view: bool = False) -> str:
    author, is_bot = _author(ws, message.user, message.bot_id)
    badge = '<span class="badge">APP</span>' if is_bot else ""
    edited = '<span class="edited">(edited)</span>' if message.edited else ""
    tail = ""
    if not thread_view and not message.is_reply:
        summary = ws.message_to_api(message, with_metadata=False)
        count = summary.get("reply_count", 0)
        if count:
            tail = (f'<button type="button" class="replies" data-thread="{esc(message.ts)}">'
                    f'{count} {"reply" if count == 1 else "replies"}</button>'
                    f'<span class="last-reply">last reply {_clock(summary["latest_reply"])}</span>')
        else:
            tail = (f'<button type="button" class="reply" data-thread="{esc(message.ts)}">'
                    "Reply in thread</button>")
    return (f'<div class="msg{" bot" if is_bot else ""}" data-channel="{esc(message.channel)}" '
            f'data-ts="{esc(message.ts)}"><div class="avatar">{esc(author[:1].upper())}</div>'
            f'<div class="body"><div class="meta"><span class="author">{esc(author)}</span>{badge}'
            f'<time>{_clock(message.ts)}</time>{edited}</div>'
            f"{_content(ws, message.text, message.blocks, message.files, viewer)}"
            f'<div class="thread-tail">{tail}</div></div></div>')


def ephemeral_html(ws: Workspace, ephemeral: Ephemeral, viewer: str) -> str:
    return (f'<div class="msg bot ephemeral" data-channel="{esc(ephemeral.channel)}" '
            f'data-ts="{esc(ephemeral.ts)}" data-ephemeral><div class="avatar">'
            f'{esc(ws.app.bot_name[:1].upper())}</div><div class="body"><div class="meta">'
            f'<span class="author">{esc(ws.app.bot_name)}</span><span class="badge">APP</span>'
            f'<time>{_clock(ephemeral.ts)}</time></div>'
            f'<div class="only-you">\U0001f441 Only visible to you · '
            f'<button type="button" class="link" data-dismiss="{esc(ephemeral.ts)}">Dismiss</button></div>'
            f"{_content(ws, ephemeral.text, ephemeral.blocks, (), viewer)}</div></div>")


def _merged(ws: Workspace, messages: list[Message], ephemerals: list[Ephemeral], viewer: str,
            *, thread_view: bool) -> str:
    items: list[tuple[tuple[int, int], str]] = []
    for message in messages:
        items.append((_ts_key(message.ts), message_html(ws, message, viewer, thread_view=thread_view)))
    for ephemeral in ephemerals:
        items.append((_ts_key(ephemeral.ts), ephemeral_html(ws, ephemeral, viewer)))
    items.sort(key=lambda item: item[0])
    return "".join(html for _, html in items)


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


def conversation_html(ws: Workspace, channel: Channel | None, viewer: str) -> str:
    if channel is None:
        return '<div class="empty">No messages yet. Type <code>/baton help</code> below.</div>'
    messages = ws.messages(channel.id, include_replies=False)
    ephemerals = [e for e in ws.ephemerals(viewer, channel.id) if not e.thread_ts]
    shown = _merged(ws, messages, ephemerals, viewer, thread_view=False)
    return shown or '<div class="empty">No messages yet. Type <code>/baton help</code> below.</div>'


def thread_html(ws: Workspace, channel: Channel, ts: str, viewer: str) -> str | None:
    try:
        parent, *replies = ws.replies(channel.id, ts)
    except Exception:
        return None
    ephemerals = [e for e in ws.ephemerals(viewer, channel.id) if e.thread_ts == parent.ts]
    count = len(replies)
    return (f'{message_html(ws, parent, viewer, thread_view=True)}'
            f'<div class="thread-count">{count} {"reply" if count == 1 else "replies"}</div>'
            f"{_merged(ws, replies, ephemerals, viewer, thread_view=True)}")


def home_html(ws: Workspace, viewer: str) -> str:
    view = ws.home(viewer)
    if view is None:
        return ('<div class="empty">The app has not published a Home tab for you yet '
                "(it does when you open this tab).</div>")
    drawn = blocks_html(view.blocks, surface(ws, viewer, view))
    return f'<div class="home" data-view="{esc(view.id)}">{drawn}</div>'


def modal(ws: Workspace, viewer: str) -> dict[str, str] | None:
    """The modal the viewer sees (the top of their stack): its HTML, and a key that changes
    only when the app changes it, so the page keeps what is being typed meanwhile."""
    stack = ws.modal_stack(viewer)
    if not stack:
        return None
    view = stack[-1]
    key = f"{view.id}:{view.hash}:{json.dumps(view.errors, sort_keys=True)}"
    shown = surface(ws, viewer, view)
    title = text_html(view.title, shown) if view.title else ""
    buttons = ""
    if view.close or view.submit:
        close = text_html(view.close, shown) if view.close else "Cancel"
        buttons += f'<button type="button" class="bk-button" data-close>{close}</button>'
    if view.submit:
        submit = text_html(view.submit, shown)
        buttons += f'<button type="button" class="bk-button primary" data-submit>{submit}</button>'
    back = '<span class="stacked">\u2190</span>' if len(stack) > 1 else ""
    html = (f'<div class="overlay"><div class="dialog modal" role="dialog" aria-modal="true" '
            f'data-view="{esc(view.id)}"><header>{back}<h2>{title}</h2>'
            f'<button type="button" class="x" data-close aria-label="Close">\u00d7</button></header>'
            f'<div class="modal-body">{blocks_html(view.blocks, shown)}</div>'
            f'<div class="error submit-error" role="alert" hidden></div>'
            f"<footer>{buttons}</footer></div></div>")
    return {"key": key, "html": html}


def sidebar_html(ws: Workspace, viewer: str, place: str) -> str:
    def link(target: str, label: str, latest: str | None) -> str:
        active = " active" if target == place else ""
        return (f'<button type="button" class="place{active}" data-place="{esc(target)}"'
                f'{f" data-latest={chr(34)}{esc(latest)}{chr(34)}" if latest else ""}>{label}</button>')

    rows = ['<div class="group-title">Channels</div>']
    for channel in sorted(ws.channels(), key=lambda c: c.name):
        if channel.kind in ("channel", "private") or (channel.kind == "mpim" and viewer in channel.members):
            mark = "\U0001f512" if channel.kind == "private" else "#"
            rows.append(link(channel.id, f'<span class="hash">{mark}</span> {esc(channel.name)}',
                             _latest(ws, channel, viewer)))
    dm = ws.dm_of(viewer)
    rows.append('<div class="group-title">Apps</div>')
    rows.append(link(HOME, f'<span class="hash">\u2302</span> {esc(ws.app.bot_name)} · Home', None))
    rows.append(link(DM, f'<span class="hash">\u2709</span> {esc(ws.app.bot_name)} · Messages',
                     _latest(ws, dm, viewer) if dm else None))
    return "".join(rows)


def _latest(ws: Workspace, channel: Channel, viewer: str) -> str | None:
    """The newest ts the viewer can see there (thread replies mentioning them count)."""
    stamps = [m.ts for m in ws.messages(channel.id)
              if not m.is_reply or f"<@{viewer}>" in m.text]
    stamps += [e.ts for e in ws.ephemerals(viewer, channel.id)]
    return max(stamps, key=_ts_key) if stamps else None


def place_title(ws: Workspace, place: str, channel: Channel | None) -> str:
    if place in (HOME, DM):
        return esc(ws.app.bot_name)
    return f"# {esc(channel.name)}" if channel else ""


def ahead_text(ahead: timedelta) -> str:
    """How far the bot's clock runs ahead of the real one: `+1d4h`, `+30m`."""
    minutes = int(ahead.total_seconds() // 60)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return "+" + ("".join(parts) or "0m")
