"""The HTTP API for external agents, under `/api/v1` (docs/api.md)."""

from __future__ import annotations

import re

from starlette.routing import Mount
from starlette.types import ASGIApp


class ApiMount(Mount):
    """`/api/v1/...` to the API, whatever the rest of the path holds: Starlette's own mount
    stops at a newline (`%0A` in a run id), and the request would get the outer app's plain
    404 instead of the API's problem+json."""

    def __init__(self, path: str, app: ASGIApp) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)
