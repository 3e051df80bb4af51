"""JSON from outside Baton: Slack's payloads, webhook bodies, button values, modal metadata.

Python's parser recurses once per level of nesting: `[[[[...` a few thousand deep raises
RecursionError (a 500, or a listener that dies), and a value a little shallower than that
still breaks whatever walks it next (cleaning its text, storing it as JSON). Nothing Slack
or a webhook caller sends nests deeper than a few levels, so anything beyond `MAX_DEPTH` is
refused as malformed, like any other JSON that is not what Baton expects.
"""

from __future__ import annotations

import json
from typing import Any

# Slack's deepest payloads (a click on a message whose blocks hold rich-text lists) nest
# about a dozen levels.
MAX_DEPTH = 64


class TooDeep(ValueError):
    pass


def depth_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` (parsed JSON) nests at most `limit` lists or objects deep. Walked with
    a stack of its own, so any depth is measured without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return True


# Python reads a whole number of at most 4,300 digits; json.loads' error for a longer one
# tells the sender to change the server's interpreter settings.
MAX_DIGITS = 4300


def _whole_number(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"a number in it has {len(digits.lstrip('-')):,} digits; at most "
                         f"{MAX_DIGITS:,} are read")
    return int(digits)


def parse_json(text: str | bytes, limit: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing nesting deeper than `limit` (ValueError, as for any bad JSON)."""
    try:
        value = json.loads(text, parse_int=_whole_number)
    except RecursionError:
        raise TooDeep(f"JSON nested more than {limit} levels deep") from None
    if not depth_within(value, limit):
        raise TooDeep(f"JSON nested more than {limit} levels deep")
    return value
