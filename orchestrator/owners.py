"""Who holds a lease: an owner id names the host and process, so a process on the same
host can tell at once that a lease's holder has died (no need to wait for it to expire)."""

from __future__ import annotations

import os
import secrets
import socket
import threading

HOST = socket.gethostname()


def new_owner() -> str:
    return f"{HOST}:{os.getpid()}:{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Owners:
    """The owner ids this process has handed out and not yet released."""

    def __init__(self) -> None:
        self._active: set[str] = set()
        self._lock = threading.Lock()

    def take(self) -> str:
        owner = new_owner()
        with self._lock:
            self._active.add(owner)
        return owner

    def release(self, owner: str) -> None:
        with self._lock:
            self._active.discard(owner)

    def dead(self, owner: str) -> bool:
        """True only when we can be sure: same host, and the process (or, for this process,
        the holder) is gone. Other hosts' owners are judged by lease expiry."""
        host, _, rest = owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host != HOST or not pid_text.isdigit():
            return False
        pid = int(pid_text)
        if pid == os.getpid():
            with self._lock:
                return owner not in self._active
        return not _pid_alive(pid)
