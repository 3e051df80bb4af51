"""A framework's tool call put behind a Baton flow: what the adapters (`openai_agents`,
`langgraph`) share.

A call is asked as a run of the flow (the tool's name, the arguments the flow declares), and
once people approve it is performed once with the approved arguments, edits included, and
reported. Everything here is plain Python and httpx: the frameworks are imported only by
the adapter modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from baton_client.approval import IN_FLIGHT, _jsonable, _refusal
from baton_client.errors import BatonError, Rejected, RunFailed, TimedOut
from baton_client.runs import Run

OnTimeout = Literal["reject", "keep"]
OnDenied = Literal["tell_model", "raise"]


@dataclass
class GatedTool:
    """One tool and the flow that approves it."""

    flow: str
    name: str
    summary: str | Callable[..., str] | None = None

    def summary_of(self, arguments: Mapping[str, Any]) -> str | None:
        if callable(self.summary):
            return str(self.summary(**arguments))
        return self.summary


def declared_inputs(flows: list[dict[str, Any]], flow: str) -> set[str]:
    """The inputs `flow` declares, from `GET /flows`; an error naming the token's flows if it
    may not start it."""
    for found in flows:
        if found["name"] == flow:
            return set(found["inputs"])
    raise BatonError(f"this token may not start {flow!r} (its flows: "
                     + (", ".join(f["name"] for f in flows) or "none") + ")")


def inputs_of(arguments: Mapping[str, Any], declared: set[str]) -> dict[str, Any]:
    """The call's arguments that the flow declares, as JSON values: what approvers see."""
    return {name: _jsonable(value) for name, value in arguments.items()
            if name in declared and value is not None}


def _same(asked: Any, recorded: Any) -> bool:
    numbers = (int, float)
    if (isinstance(asked, numbers) and isinstance(recorded, numbers)
            and not isinstance(asked, bool) and not isinstance(recorded, bool)):
        return math.isclose(float(asked), float(recorded), rel_tol=0, abs_tol=1e-9)
    return asked == recorded or str(asked) == str(recorded)


def asked_for(run: Run, gated: GatedTool, inputs: Mapping[str, Any]) -> str | None:
    """Why `run` is not the run this call asked for (None when it is): a decision meant for
    another call must never release this one."""
    if run["flow"] != gated.flow:
        return f"{run.id} is a run of {run['flow']!r}, not of {gated.flow!r}"
    if run["tool"] not in (None, gated.name):
        return f"{run.id} asked for the tool {run['tool']!r}, not {gated.name!r}"
    requested = run["requested_inputs"]
    differs = sorted(k for k, v in inputs.items() if not _same(v, requested.get(k)))
    if differs:
        return f"{run.id} asked with other arguments ({', '.join(differs)})"
    return None


def refusal(run: Run) -> BatonError | None:
    """`Rejected`, `TimedOut` or `RunFailed` for a run that will not be approved, or None."""
    return _refusal(run)


def for_the_model(tool: str, error: BatonError) -> str:
    """What the agent's model is told when Baton did not approve a call: who and why."""
    if isinstance(error, Rejected):
        who = error.decider or "the flow's policy"
        because = f": {error.reason}" if error.reason else ""
        return f"{tool} was not approved: rejected in Baton by {who} ({error.run}){because}"
    if isinstance(error, TimedOut):
        because = f": {error.reason}" if error.reason else ""
        return f"{tool} was not approved: nobody decided in time ({error.run}){because}"
    return f"{tool} was not approved: {error}"


def earlier(run: Run) -> Any:
    """A run this call did not approve anew: its action's reported result, or why not."""
    action = run.action or {}
    if action.get("status") == "done":
        return action.get("result")
    raise RunFailed(run.id, f"the run's action is {action.get('status') or 'not due'} "
                            f"({run.state}); it is not run again")


def approved_arguments(given: Mapping[str, Any], run: Run) -> dict[str, Any]:
    """The call's arguments with the approved ones in place, edits included (a whole number
    approved as 18000.0 for an int stays an int)."""
    merged = dict(given)
    for name, value in run.arguments.items():
        if name not in merged:
            continue
        before = merged[name]
        if (isinstance(before, int) and not isinstance(before, bool)
                and isinstance(value, float) and value.is_integer()):
            value = int(value)
        merged[name] = value
    return merged


def in_flight(run: Run) -> RunFailed | None:
    """The action was started by an earlier call and may have run: never run it twice."""
    if (run.action or {}).get("status") == "started":
        return RunFailed(run.id, IN_FLIGHT)
    return None


def result_of(value: Any) -> Any:
    """A tool's return value as the JSON Baton records."""
    return _jsonable(value)
