"""A run's id as people write it, and the states a run ends in."""

from __future__ import annotations

import re

from orchestrator.errors import BatonError, NotFound

FINISHED = frozenset({"succeeded", "rejected", "stopped", "failed"})
ONLY_PEOPLE = ("only people decide, claim, snooze or reassign gates; a service (an agent) "
               "starts runs, submits signals and reports results")
_REF = re.compile(r"^\s*(?:R-?)?(\d+)\s*$", re.IGNORECASE)


def parse_ref(ref: str | int) -> int:
    if isinstance(ref, int):
        return ref
    match = _REF.match(ref)
    if not match:
        raise BatonError(f"{ref!r} is not a run id; run ids look like R-42")
    digits = match.group(1).lstrip("0") or "0"
    # no database holds an id this large (and int() refuses text of over 4,300 digits)
    if len(digits) > 19 or int(digits) > 2**63 - 1:
        raise NotFound(f"no run {ref.strip()[:40]}", see="status")
    return int(digits)
