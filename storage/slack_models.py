"""The Slack adapter's tables: the calls the bot owes Slack (outbox), where the messages it
sent live (refs), and the requests from Slack it has stored before acknowledging (inbox).
Their statements are in storage.slack; storage.models re-exports these classes, so every
table is still found there.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.columns import json_field, new_dict


class SlackOutbox(SQLModel, table=True):
    """A Web API call the bot owes Slack. Written in the same transaction as the change it
    reports, sent after commit, retried until Slack takes it; in order per lane (a run's
    thread, a person's home tab)."""

    __tablename__ = "slack_outbox"
    __table_args__ = (sa.Index("ix_slack_outbox_pending", "status", "id"),
                      # "is a newer call of this key waiting?", asked before each such call
                      sa.Index("ix_slack_outbox_supersede", "supersede", "id"),
                      sa.Index("ix_slack_outbox_ref", "ref"),
                      sa.Index("ix_slack_outbox_run_id", "run_id"))

    id: int | None = Field(default=None, primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    lane: str
    method: str
    payload: dict = json_field(default_factory=new_dict)
    ref: str | None = None  # remember the sent message's channel and ts under this key
    thread_ref: str | None = None  # post as a reply to the message stored under this key
    target_ref: str | None = None  # chat.update / chat.delete the message under this key
    supersede: str | None = None  # a newer row with the same key replaces this one unsent
    status: str = "pending"  # pending | sending | unsure | sent | failed | superseded
    claimed_by: str | None = None  # the sender (host:pid:token) making the call right now
    claim_until: datetime | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    sent_at: datetime | None = None


class SlackRef(SQLModel, table=True):
    """Where a message the bot sent lives, so later messages can thread under it or
    update it."""

    __tablename__ = "slack_ref"

    key: str = Field(primary_key=True)
    run_id: int | None = Field(default=None, foreign_key="run.id", index=True)
    channel: str
    ts: str
    created_at: datetime


class SlackInbox(SQLModel, table=True):
    """A request from Slack that changes something (a decision, a run to start), stored
    before it is acknowledged: if the process dies after answering Slack, another process
    (or this one, restarted) finishes it. Keyed by Slack's trigger or event id, so a request
    delivered twice is handled once."""

    __tablename__ = "slack_inbox"
    __table_args__ = (sa.Index("ix_slack_inbox_status", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    kind: str  # command | event | action:<action id> | view:<callback id> (bot.app.SlackBot.finishers)
    payload: dict = json_field(default_factory=new_dict)
    status: str = "pending"  # pending | done | failed
    claimed_by: str | None = None
    claim_until: datetime | None = None
    attempts: int = 0
    error: str | None = None
    received_at: datetime
    processed_at: datetime | None = None
