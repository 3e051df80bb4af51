"""files.* as files_upload_v2 uses them: reserve an upload URL, upload, complete and share."""

from __future__ import annotations

from sandbox.errors import ApiError
from sandbox.records import JSON
from sandbox.webapi.base import ApiRequest, invalid, method


@method("files.getUploadURLExternal")
def get_upload_url(req: ApiRequest) -> JSON:
    args = req.args
    filename = args.require("filename", "invalid_arguments")
    length = args.int("length", -1)
    if length < 0:
        raise invalid("invalid_arguments", ["missing required field: length"])
    file = req.workspace.reserve_file(filename, length, alt_txt=args.text("alt_txt"))
    return {"upload_url": f"{req.base_url}/upload/v1/{file.id}", "file_id": file.id}


@method("files.completeUploadExternal")
def complete_upload(req: ApiRequest) -> JSON:
    ws, args = req.workspace, req.args
    files = args.json("files", "invalid_arguments")
    if not isinstance(files, list) or not files or \
            not all(isinstance(f, dict) and f.get("id") for f in files):
        raise invalid("invalid_arguments", ["files must be a non-empty array of {id, title}"])
    targets = [c.strip() for c in (args.text("channels") or "").split(",") if c.strip()]
    if "channel_id" in args:
        targets.insert(0, args.require("channel_id", "channel_not_found"))
    channels = [ws.resolve_channel(t) for t in targets]
    thread_ts = args.text("thread_ts") or None
    # Check everything before changing anything: a failed call must leave no half-shared files.
    for item in files:
        file = ws.file(item["id"])
        if file.content is None or file.completed:
            raise ApiError("file_not_found" if file.content is None else "file_uploads_already_completed")
    if thread_ts:
        for channel in channels:
            ws.message(channel.id, thread_ts)
    completed = [ws.complete_file(item["id"], title=item.get("title"), channels=[c.id for c in channels])
                 for item in files]
    shared = [f.to_api(ws.team, ws.app) for f in completed]
    for channel in channels:
        ws.post_message(channel.id, text=args.text("initial_comment") or "", files=shared,
                        thread_ts=thread_ts)
    return {"files": shared}


@method("files.info")
def files_info(req: ApiRequest) -> JSON:
    ws = req.workspace
    file = ws.file(req.args.require("file", "file_not_found"))
    if not file.completed:
        raise ApiError("file_not_found")
    return {"file": file.to_api(ws.team, ws.app), "comments": [], "response_metadata": {"next_cursor": ""}}
