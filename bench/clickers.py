"""The load generator of the click-to-ack benchmark: people clicking gate buttons, as Slack
delivers the clicks (a signed `block_actions` POST to the app's request URL).

It runs in its own process with one asyncio loop and a deliberately thin HTTP/1.1 client
(one keep-alive connection per clicker), so that on a 2-core machine it takes as little
CPU from the server as it can. Each clicker waits for the answer to a click, then "thinks"
for a random time (`think`, seconds, uniform) before clicking the next gate: 50 people
clicking every 2 s on average offer 25 clicks a second. With `think=(0, 0)` every clicker
clicks again at once, and the server's throughput alone sets the latency.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from typing import Any

from sandbox import signature

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    close = False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def _clicker(host: str, port: int, path: str, secret: str, bodies: list[bytes],
                   start_at: float, stop_at: float, out: list[tuple[float, float, int]],
                   think: tuple[float, float], rng: random.Random) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    def until(pause: float) -> float:  # a pause that ends by `stop_at`: nobody clicks after it
        return max(0.0, min(pause, stop_at - time.monotonic()))

    await asyncio.sleep(until(max(0.0, start_at - time.monotonic()) + rng.uniform(0, think[1])))
    for i, body in enumerate(bodies):
        if i and think[1]:
            await asyncio.sleep(until(rng.uniform(*think)))
        if time.monotonic() >= stop_at:
            break
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert reader is not None
        timestamp = str(int(time.time()))
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
                f"X-Slack-Request-Timestamp: {timestamp}\r\n"
                f"X-Slack-Signature: {signature(secret, timestamp, body)}\r\n\r\n").encode()
        started = time.perf_counter()
        at = time.monotonic()
        try:
            writer.write(head + body)
            await writer.drain()
            status, close = await _read_response(reader)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            status, close = 0, True  # counted as an error
        out.append((at, time.perf_counter() - started, status))
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def click(url: str, secret: str, bodies: list[list[bytes]], duration: float,
          think: tuple[float, float] = (0.0, 0.0), delay: float = 0.5, seed: int = 1) -> dict[str, Any]:
    """(Child process.) Every clicker works through its own list of request bodies for
    `duration` seconds. Returns (start offset s, seconds to the answer, HTTP status) per click."""
    rest = url.removeprefix("http://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")

    async def main() -> list[list[tuple[float, float, int]]]:
        start_at = time.monotonic() + delay
        stop_at = start_at + duration
        results: list[list[tuple[float, float, int]]] = [[] for _ in bodies]
        rng = random.Random(seed)
        await asyncio.gather(*(_clicker(host, int(port), "/" + path, secret, mine, start_at, stop_at, out,
                                        think, random.Random(rng.random()))
                               for mine, out in zip(bodies, results, strict=True)))
        return [[(at - start_at, took, status) for at, took, status in out] for out in results]

    started = time.time()
    per_clicker = asyncio.run(main())
    return {"clicks": per_clicker, "wall_started": started + delay}
