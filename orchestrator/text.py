"""Text from outside (people, agents, other systems) made storable.

Invalid UTF-8 reaches Python as lone surrogates (JSON's `"\\udcff"`, a terminal's
surrogate-escaped bytes). Such a string cannot be encoded again: stored in a reason or an
input it would break the trace's hash chain and PostgreSQL's encoding. NUL (JSON's
`"\\u0000"`) is valid UTF-8 but PostgreSQL refuses it in text and jsonb. Both become
U+FFFD, the replacement character, wherever text enters the engine.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def well_formed(value: Any) -> Any:
    """`value` with every lone surrogate and NUL, in any string inside it, replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {well_formed(k): well_formed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [well_formed(v) for v in value]
    return value
