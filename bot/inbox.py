"""Requests from Slack are stored before they are acknowledged.

Slack needs its answer within three seconds; the work (recording a decision, starting a
run) follows the answer. Between the two the process may die: Slack has its 200 and
nobody would ever do the work. So the request is written here first (one small insert),
then acknowledged, then processed. A request whose processor died is finished by the
next sweep of any replica.

The row's key is what makes a request happen once: the same request again, whether Slack
redelivers it or someone replays a captured copy within the five minutes its signature
lasts, finds the key taken and changes nothing (`request_key`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.owners import Owners
from storage import slack
from storage.engine import Database
from storage.slack import InboxRequest

CLAIM = timedelta(seconds=60)
# Slack's ids are a few dozen characters; a longer one (only a forger holding the signing
# secret could send it) is keyed by its digest, so the key always fits the unique index.
MAX_ID = 200


def request_key(kind: str, body: dict[str, Any], signed_at: str | None = None) -> str:
    """The inbox key of a Slack request of `kind` (an inbox kind: `command`, `event`,
    `action:…`, `view:…`). The key names the request's type only (the part before the
    colon), as it did before kinds named their listener: the same request is the same key
    whichever version of Baton accepted it.

    Slack's own id for the request when it has one: for a message (a DM, a mention) the
    message itself, its channel and `ts`, whatever event carries it; `event_id` for any
    other event; `trigger_id` for a command, click or submission (Slack mints one per
    interaction, and a redelivery, freshly signed, keeps it). A request without it is keyed
    by a digest of the signed bytes (`signed_at`, its X-Slack-Request-Timestamp, and
    everything the body says): the same bytes sent again are the same request, and no two
    different requests share a key because a field is missing from both."""
    kind = kind.partition(":")[0]
    ident = body.get("event_id" if kind == "event" else "trigger_id")
    event = body.get("event") if kind == "event" else None
    if isinstance(event, dict) and all(isinstance(event.get(k), str) and event[k]
                                       for k in ("channel", "ts")):
        # One message is one request: delivered again under another event_id (a new
        # event, or a message event and a mention of the same message) it is still answered once.
        ident = f"message:{event['channel']}:{event['ts']}"
    if isinstance(ident, str) and ident:
        if len(ident) <= MAX_ID:
            return f"{kind}:{ident}"
        return f"{kind}:id-sha256:{hashlib.sha256(ident.encode('utf-8', 'replace')).hexdigest()}"
    said = json.dumps([signed_at, body], sort_keys=True, ensure_ascii=True, default=str)
    return f"{kind}:body-sha256:{hashlib.sha256(said.encode()).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Stored:
    """A request in the inbox, as the code that finishes it gets it: right after it was
    acknowledged, or from the sweep after the process that acknowledged it died. `kind` was
    decided once, by the listener bolt routed the request to, and stored with it
    (bot.app.SlackBot.finishers maps it to its finisher)."""

    row: int
    key: str
    kind: str
    body: dict[str, Any]
    received_at: datetime | None = None  # from the sweep: when the request was made


def signed_at(request: Any) -> str | None:
    """The signature timestamp of a bolt request (None in Socket Mode, where there is none)."""
    found = getattr(request, "headers", {}).get("x-slack-request-timestamp") or [None]
    return found[0] if isinstance(found, list | tuple) else found


class Inbox:
    def __init__(self, db: Database, clock: Any) -> None:
        self.db = db
        self.clock = clock
        self.owners = Owners()
        self.owner = self.owners.take()

    def accept(self, key: str, kind: str, payload: dict[str, Any]) -> int | None:
        """Store a request, claimed by this process. None when the key was seen before."""
        now = self.clock.now()
        with self.db.writer(urgent=True) as w:  # Slack waits for this one: it goes first
            return slack.accept_request(w, {
                "key": key, "kind": kind, "payload": payload, "received_at": now,
                "claimed_by": self.owner, "claim_until": now + CLAIM, "attempts": 1})

    def finish(self, row_id: int, error: str | None = None) -> None:
        with self.db.writer() as w:
            slack.finish_request(w, row_id, error, self.clock.now())

    def _abandoned(self, row: InboxRequest, now: datetime) -> bool:
        if row.claimed_by is None or row.claim_until is None or row.claim_until <= now:
            return True
        return row.claimed_by != self.owner and self.owners.dead(row.claimed_by)

    def claim_abandoned(self, limit: int = 50) -> list[InboxRequest]:
        """Take over requests whose processor died or timed out."""
        now = self.clock.now()
        with self.db.read() as s:
            ids = slack.pending_request_ids(s, limit)
        taken: list[InboxRequest] = []
        for row_id in ids:
            with self.db.writer() as w:
                row = slack.claim_request(w, row_id, self.owner, now + CLAIM,
                                          lambda found: self._abandoned(found, now))
            if row is not None:
                taken.append(row)
        return taken
