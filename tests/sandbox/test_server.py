"""The emulator as a server: an ephemeral loopback port, and nothing left listening after."""

from __future__ import annotations

import socket

import httpx
import pytest

from sandbox import EmulatorServer, LoopbackServer


def test_serves_on_an_ephemeral_loopback_port_and_stops_cleanly() -> None:
    with EmulatorServer() as first, EmulatorServer() as second:
        assert first.url.startswith("http://127.0.0.1:") and first.api_url == f"{first.url}/api/"
        assert first.url != second.url
        index = httpx.get(first.url, trust_env=False).json()
        assert index["ok"] and index["api_url"] == first.api_url
        port = int(first.url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_a_server_cannot_be_started_twice() -> None:
    server = LoopbackServer(EmulatorServer().emulator)
    with server, pytest.raises(RuntimeError, match="running already"):
        server.start()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
