"""Text from outside (people, agents, other systems) made storable.

Invalid UTF-8 reaches Python as lone surrogates (JSON's `"\\udcff"`, a terminal's
surrogate-escaped bytes). Such a string cannot be encoded again: stored in a reason or an
input it would break the trace's hash chain and PostgreSQL's encoding. NUL (JSON's
`"\\u0000"`) is valid UTF-8 but PostgreSQL refuses it in text and jsonb. Both become
U+FFFD, the replacement character, wherever text enters the engine.
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# The same characters in JSON text: NUL is escaped there, a lone surrogate left as it is
# (ensure_ascii=False). A backslash written as text before "u0000" matches too: in doubt.
_UNSTORABLE_IN_JSON = re.compile("\\\\u0000|[\ud800-\udfff]")
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def well_formed(value: Any) -> Any:
    """`value` with every lone surrogate and NUL, in any string inside it, replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {well_formed(k): well_formed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [well_formed(v) for v in value]
    return value


def needs_cleaning(value: Any) -> bool:
    """Whether `well_formed` could change anything in `value` (JSON values), found in one
    pass over its JSON text rather than a call per string; True when in doubt. For a value
    that is already a fresh copy (a model's dump), which then need not be copied again."""
    try:
        text = _ENCODE(value)
    except (TypeError, ValueError):
        return True
    return _UNSTORABLE_IN_JSON.search(text) is not None
