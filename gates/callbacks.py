"""Where callbacks may go: the operator's allowlist (`BATON_CALLBACK_HOSTS`), checked
strictly. Pure policy, no network.

An entry is `host` (port 443), `host:port`, or either with `http://` in front to allow
plain HTTP to it (port 80 unless given; otherwise callbacks go over HTTPS only). A URL's
host must equal an entry's host exactly: `allowed.com.evil.com` and `evil.com/allowed.com`
are other hosts. Anything that
parsers read differently is refused rather than interpreted: user information
(`https://allowed.com@evil.com`), backslashes, percent-escapes, spaces or control
characters in the address, a fragment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2000
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")
_DEFAULT_PORT = {"http": 80, "https": 443}


@dataclass(frozen=True)
class AllowedHost:
    host: str
    port: int | None = None
    plain_http: bool = False

    def admits(self, scheme: str, host: str, port: int) -> bool:
        """Without a port, an entry admits the scheme's own (443, or 80 for plain HTTP)."""
        return (host == self.host and port == (self.port or _DEFAULT_PORT[scheme])
                and (scheme == "https" or self.plain_http))


class CallbackHostError(ValueError):
    """An allowlist entry that is not `host`, `host:port` or `http://host[:port]`."""


def _host(text: str) -> str:
    host = text.lower().rstrip(".")
    if not (_HOST.match(host) or _IPV6.match(host)):
        raise CallbackHostError(f"{text!r} is not a host name (use the punycode form of "
                                "international names)")
    return host


def parse_allowlist(entries: Iterable[str]) -> tuple[AllowedHost, ...]:
    allowed = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        plain = entry.lower().startswith("http://")
        if entry.lower().startswith(("http://", "https://")):
            entry = entry.split("://", 1)[1]
        if "/" in entry or "@" in entry:
            raise CallbackHostError(f"BATON_CALLBACK_HOSTS entry {raw!r}: give a host or "
                                    "host:port, without a path or user")
        host, port = entry, None
        match = re.match(r"^(.*):(\d{1,5})$", entry)
        if match and not entry.endswith("]"):
            host, port = match.group(1), int(match.group(2))
        try:
            allowed.append(AllowedHost(_host(host), port, plain))
        except CallbackHostError as exc:
            raise CallbackHostError(f"BATON_CALLBACK_HOSTS entry {raw!r}: {exc}") from None
    return tuple(allowed)


def callback_problem(url: str, allowed: Iterable[AllowedHost]) -> str | None:
    """Why Baton will not POST to `url`, or None when it may."""
    allowed = tuple(allowed)
    if not allowed:
        return ("callbacks are off on this server: an operator lists the receiving hosts in "
                "BATON_CALLBACK_HOSTS")
    if len(url) > MAX_URL:
        return f"at most {MAX_URL} characters"
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in url) \
            or not url.isascii():
        return "must be a plain http(s) URL: no spaces, backslashes, control or non-ASCII characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "must start with https:// (or http:// for a host the operator allows it for)"
    if "@" in parts.netloc:
        return "must not carry user information (user:password@)"
    if "%" in parts.netloc or not parts.hostname:
        return "must name a host"
    if parts.fragment or url.endswith("#"):
        return "must not have a #fragment"
    try:
        port = parts.port or _DEFAULT_PORT[parts.scheme]
        host = _host(f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname)
    except (ValueError, CallbackHostError):
        return "must name a host and, optionally, a port (1-65535)"
    if any(entry.admits(parts.scheme, host, port) for entry in allowed):
        return None
    same_host = [entry for entry in allowed if entry.host == host]
    if same_host and not any((entry.port or _DEFAULT_PORT[parts.scheme]) == port
                             for entry in same_host):
        return f"port {port} is not allowed for {host}"
    if same_host and parts.scheme == "http":
        return f"plain http:// is not allowed for {host}; use https://"
    return (f"host {host}{'' if port == _DEFAULT_PORT[parts.scheme] else f':{port}'} is not in "
            "the server's BATON_CALLBACK_HOSTS")
