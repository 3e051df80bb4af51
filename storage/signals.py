"""Signals: what agents said about a run. Only ever inserted; a run's current signal of an
agent is its latest."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from storage.models import Signal as SignalModel
from storage.rows import complete
from storage.writer import Writer

SIGNALS: sa.Table = SignalModel.__table__  # type: ignore[attr-defined]
_OF_RUN = sa.select(SIGNALS).where(SIGNALS.c.run_id == sa.bindparam("run")).order_by(SIGNALS.c.id)


def latest_signals(conn: Any, run_id: int) -> dict[str, Any]:
    """The run's latest signal row of each agent, by agent (in a write transaction, with the
    signals it has queued)."""
    found = conn.execute(_OF_RUN, {"run": run_id})
    return {row.agent: row for row in found}


def queue_signal(w: Writer, values: dict[str, Any]) -> dict[str, Any]:
    """Store a signal (every column but the id) with the transaction's other rows; the row."""
    row = complete(SignalModel, values)
    w.queue(SIGNALS, row)
    return row
