"""The Python client of Baton's approval API (docs/api.md)."""

from baton_client.approval import require_approval
from baton_client.client import AsyncBaton, Baton
from baton_client.errors import (
    ApiError,
    BatonError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Rejected,
    RunFailed,
    ServerError,
    TimedOut,
    Unauthorized,
)
from baton_client.runs import Run
from baton_client.signatures import verify_signature

__all__ = [
    "ApiError", "AsyncBaton", "Baton", "BatonError", "Conflict", "Forbidden", "InvalidRequest",
    "NotFound", "Rejected", "Run", "RunFailed", "ServerError", "TimedOut", "Unauthorized",
    "require_approval", "verify_signature",
]
