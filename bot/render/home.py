"""The App Home tab: what waits for you, and the runs you started."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from bot.blocks import (
    Block,
    action_rows,
    button,
    context,
    divider,
    esc,
    header,
    mrkdwn,
    plain,
    section,
)
from bot.render.common import STATUS_ICON, mention, when
from gates.org import Org

MAX_HOME_BLOCKS = 100


SHOWN_GATES = 15
SHOWN_RUNS = 20  # the newest runs a person started


class WaitingGate(Protocol):
    """What the home shows of a gate waiting for its reader (a `GateView` has it too)."""

    id: int
    run: str
    requester: str
    title: str
    options: list[dict[str, Any]]
    deadline: datetime | None
    version: int


class StartedRun(Protocol):
    """What the home shows of a run its reader started (a `storage.models.Run` has it too)."""

    status: str
    flow_name: str
    created_at: datetime

    @property
    def ref(self) -> str: ...


def home_view(org: Org, user: str, pending: Sequence[WaitingGate], runs: Sequence[StartedRun],
              total: int | None = None) -> dict[str, Any]:
    """`pending`: at least the first SHOWN_GATES gates waiting for `user`; `total`: how many
    wait in all (len(pending) when not given)."""
    total = len(pending) if total is None else total
    blocks: list[Block] = [header(f"Waiting for you ({total})")]
    if not pending:
        blocks.append(section(mrkdwn("Nothing needs your decision. :sunny:")))
    for gate in pending[:SHOWN_GATES]:
        blocks.extend(_waiting_gate(org, gate))
    if total > SHOWN_GATES:
        blocks.append(context(plain(f"{total - SHOWN_GATES} more: /baton status")))
    blocks.extend([divider(), header("Runs you started")])
    if not runs:
        blocks.append(section(mrkdwn("None yet. Start one with `/baton run FLOW key=value …`")))
    for run in runs[:SHOWN_RUNS]:
        icon = STATUS_ICON.get(run.status, "")
        blocks.append(section(mrkdwn(f"{icon} *{run.ref}* `{esc(run.flow_name)}` · {esc(run.status)}"
                                     f" · {when(run.created_at)}")))
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}


# The blocks of one waiting gate, by what they show: the approvers of a gate see the same
# blocks on their homes, rendered once for all of them (a gate's version changes with it).
_SHOWN: dict[tuple[Any, ...], list[Block]] = {}
_SHOWN_AT_MOST = 2048


def _waiting_gate(org: Org, gate: WaitingGate) -> list[Block]:
    who = mention(org, gate.requester)
    key = (gate.id, gate.version, gate.run, who, gate.title, gate.deadline, repr(gate.options))
    found = _SHOWN.get(key)
    if found is not None:
        return found
    due = f" · next step {when(gate.deadline)}" if gate.deadline else ""
    buttons = [button(o["label"], f"gate.decide.{o['id']}", {"g": gate.id, "o": o["id"]},
                      style=o.get("style")) for o in gate.options]
    found = [section(mrkdwn(f"*{esc(gate.run)}* · {esc(gate.title)}\n"
                            f"requested by {who}{due}")),
             *action_rows(buttons, f"home-gate-{gate.id}-v{gate.version}")]
    if len(_SHOWN) >= _SHOWN_AT_MOST:
        _SHOWN.clear()
    _SHOWN[key] = found
    return found
