"""The HTTP API for external agents, under `/api/v1` (docs/api.md)."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Match, Mount, get_route_path
from starlette.types import ASGIApp, Scope


class ApiMount(Mount):
    """`/api/v1` and `/api/v1/...` to the API, whatever the rest of the path holds:
    Starlette's own mount stops at a newline (`%0A` in a run id), and does not take its own
    path without a slash (the outer app redirected `/api/v1` with a 307): both got an answer
    other than the API's problem+json."""

    def __init__(self, path: str, app: ASGIApp) -> None:
        super().__init__(path, app=app)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and get_route_path(scope) == self.path:
            root_path = scope.get("root_path", "")
            child: dict[str, Any] = {"path_params": dict(scope.get("path_params", {})),
                                     "app_root_path": scope.get("app_root_path", root_path),
                                     "root_path": root_path + self.path, "endpoint": self.app}
            return Match.FULL, child
        return super().matches(scope)
