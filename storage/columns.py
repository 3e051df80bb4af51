"""Column helpers shared by the table modules (storage.models, storage.slack_models)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field


def json_field(**kw: Any) -> Any:
    return Field(sa_type=sa.JSON, **kw)


# Default factories written in Python: pydantic inspects a factory's signature on every
# model construction, and a builtin's (`dict`, `list`) takes ten times as long to inspect.
def new_dict() -> dict[str, Any]:
    return {}


def new_list() -> list[Any]:
    return []
