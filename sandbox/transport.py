"""Dropping a connection on purpose, which ASGI itself cannot express.

A Slack outage often looks like a connection closed without an answer. ASGI gives an app
no handle on its socket, so the server runs uvicorn's h11 protocol with one addition: it
remembers each connection's transport by (server address, client address), which is also
what the ASGI scope carries, so the app can find and abort its own connection.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

_lock = threading.Lock()
_transports: dict[tuple[Any, Any], asyncio.Transport] = {}


class DroppableH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio skips this for sockets from a pre-bound listener (proto 0); without it a
            # keep-alive client waits out the 40 ms delayed ACK on every response.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with _lock:
            _transports[(self.server, self.client)] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        with _lock:
            _transports.pop((self.server, self.client), None)
        super().connection_lost(exc)


async def drop_connection(scope: dict[str, Any]) -> bool:
    """Abort the connection `scope` arrived on; False if the server cannot (not ours)."""
    server, client = scope.get("server"), scope.get("client")
    with _lock:
        transport = _transports.get((tuple(server) if server else None, tuple(client) if client else None))
    if transport is None:
        return False
    transport.abort()
    # Let the server notice the loss now, so it does not try to answer on the dead socket.
    await asyncio.sleep(0)
    return True
