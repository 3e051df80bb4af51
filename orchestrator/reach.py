"""What a flow file may make Baton reach: the servers its llm agents call, the environment
variables whose values they send there as keys, the variables webhook secrets come from.

Flow files are written by people who are not the operator (a pull request, a team's own
folder), and a flow that could name any host and any variable could send the server's
secrets anywhere (`base_url: https://attacker.example`, `api_key_env: SLACK_BOT_TOKEN`).
So the operator decides, with settings (docs/security.md):

- llm servers: the one in OPENAI_BASE_URL (api.openai.com when it is unset), and the hosts
  listed in BATON_LLM_HOSTS;
- keys: OPENAI_API_KEY and the variables listed in BATON_LLM_KEY_ENVS; Baton's own secrets
  (SLACK_*, BATON_*, DATABASE_*, PG*) never, even when listed, nor any variable whose value
  is one of theirs;
- webhook secrets: only BATON_HOOK_SECRET or BATON_HOOK_SECRET_<NAME>, at least 32 bytes.

The loader checks flow files against these, and llm agents check again before every call
(a flow version stored before the settings changed is held to today's settings).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, unquote, urlsplit

OPENAI_KEY_ENV = "OPENAI_API_KEY"
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"
# Baton's own secrets: its Slack credentials, its database, its own settings (webhook
# secrets, tokens), and libpq's password variables.
OWN_SECRET_PREFIXES = ("SLACK_", "BATON_", "DATABASE_", "PG")
HOOK_SECRET = re.compile(r"^BATON_HOOK_SECRET(?:_[A-Z0-9_]+)?\Z")
MIN_HOOK_SECRET_BYTES = 32
MIN_SECRET_CHARS = 8  # shorter values of Baton's settings are words (`info`), not secrets
_SCHEMES = {"http": 80, "https": 443}


def own_secret(name: str) -> bool:
    return name.upper().startswith(OWN_SECRET_PREFIXES)


@dataclass(frozen=True)
class Server:
    """A scheme, host and port an llm agent may call (scheme or port None: any)."""

    host: str
    port: int | None = None
    scheme: str | None = None

    def admits(self, url: Server) -> bool:
        return (self.host in ("*", url.host) and self.port in (None, url.port)
                and self.scheme in (None, url.scheme))

    def __str__(self) -> str:
        text = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.scheme}://{text}" if self.scheme else text


def _host(parts: SplitResult) -> str:
    return (parts.hostname or "").rstrip(".").lower()


def server_of(url: str) -> Server:
    """Where `url` sends requests. Raises ValueError for anything two URL parsers could read
    differently (credentials, backslashes, encoded or non-ASCII hosts), so the host checked
    here is the host the HTTP client connects to."""
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in url):
        raise ValueError("it contains spaces, control characters or backslashes")
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError("it is not an http:// or https:// URL")
    if "@" in parts.netloc:
        raise ValueError("it holds credentials (user@host); name the key with api_key_env")
    host = _host(parts)
    if not host or not host.isascii() or "%" in parts.netloc:
        raise ValueError("its host is missing, encoded or not ASCII (write IDN hosts as xn--…)")
    port = parts.port  # ValueError for a port that is not a number in range
    return Server(host, port or _SCHEMES[parts.scheme], parts.scheme)


def _entry(text: str) -> Server:
    """A BATON_LLM_HOSTS entry: `*`, `host`, `host:port` or `scheme://host[:port]`."""
    text = text.strip()
    if text == "*":
        return Server("*")
    if "://" in text:
        parts = urlsplit(text)
        return Server(_host(parts), parts.port or _SCHEMES.get(parts.scheme), parts.scheme or None)
    parts = urlsplit("//" + text)
    return Server(_host(parts), parts.port)


@dataclass(frozen=True)
class Reach:
    """The operator's settings on what flow files may reach."""

    llm_hosts: tuple[str, ...] = ()  # BATON_LLM_HOSTS
    key_envs: tuple[str, ...] = ()  # BATON_LLM_KEY_ENVS, besides OPENAI_API_KEY
    # Values of Baton's own secrets that settings hold outside the environment (a .env file).
    own_values: frozenset[str] = field(default=frozenset(), repr=False)

    @classmethod
    def of(cls, llm_hosts: Iterable[str] = (), key_envs: Iterable[str] = (),
           own_values: Iterable[str | None] = ()) -> Reach:
        return cls(tuple(h.strip() for h in llm_hosts if h.strip()),
                   tuple(k.strip() for k in key_envs if k.strip()),
                   frozenset(v for v in own_values if v))

    # -- servers -----------------------------------------------------------------------------
    @staticmethod
    def default_url() -> str:
        """The openai client's own server: OPENAI_BASE_URL, read as the client reads it."""
        return os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_URL

    def servers(self) -> list[Server]:
        allowed = []
        with contextlib.suppress(ValueError):  # an unusable OPENAI_BASE_URL admits nothing
            allowed.append(server_of(self.default_url()))
        allowed += [_entry(h) for h in self.llm_hosts]
        return allowed

    def is_default_server(self, base_url: str) -> bool:
        """Whether `base_url` is OPENAI_BASE_URL's server (api.openai.com's when it is unset):
        the one the openai client's own settings are for."""
        try:
            return server_of(base_url) == server_of(self.default_url())
        except ValueError:
            return False

    def host_problem(self, base_url: str) -> str | None:
        """Why an llm agent may not call `base_url`, or None."""
        try:
            target = server_of(base_url)
        except ValueError as exc:
            return f"base_url {base_url!r} cannot be used: {exc}"
        allowed = self.servers()
        if any(entry.admits(target) for entry in allowed):
            return None
        listed = ", ".join(str(s) for s in allowed) or "none"
        return (f"base_url {base_url!r}: {target} is not a server llm agents may call; allowed: "
                f"{listed}. The operator allows a server by adding its host to BATON_LLM_HOSTS "
                "(or by pointing OPENAI_BASE_URL at it)")

    # -- keys --------------------------------------------------------------------------------
    def key_problem(self, name: str) -> str | None:
        """Why `api_key_env` may not name `name`, or None."""
        if own_secret(name):
            return (f"api_key_env {name!r} names one of Baton's own secrets "
                    f"({', '.join(p + '*' for p in OWN_SECRET_PREFIXES)}); they are never sent "
                    "to a model server, whatever the settings say")
        if name == OPENAI_KEY_ENV or name in self.key_envs:
            return None
        allowed = ", ".join((OPENAI_KEY_ENV, *self.key_envs))
        return (f"api_key_env {name!r} is not a variable llm agents may use; allowed: {allowed}. "
                "The operator allows more with BATON_LLM_KEY_ENVS")

    def value_problem(self, name: str, value: str) -> str | None:
        """Why the value of `name` may not be sent: it is the value of one of Baton's own
        secrets (the same token under another name), or the password inside one
        (DATABASE_URL's)."""
        owned = {v for k, v in os.environ.items() if own_secret(k)} | self.own_values
        passwords = {password for v in owned if (password := _password(v))}
        # Short values are settings (`BATON_LOG_LEVEL=info`), not secrets: no false alarms.
        if (len(value) >= MIN_SECRET_CHARS and value in owned) or value in passwords:
            return (f"the value of {name} is also the value of one of Baton's own secrets "
                    "(SLACK_*, BATON_*, DATABASE_*, PG*), or the password in one; it is never "
                    "sent to a model server")
        return None


def _password(url: str) -> str | None:
    """The password of a URL with credentials (`postgresql://baton:PASSWORD@db/baton`)."""
    if "@" not in url or "://" not in url:
        return None
    try:
        return unquote(urlsplit(url).password or "") or None
    except ValueError:
        return None


def hook_secret_problem(name: str) -> str | None:
    """Why a webhook's `secret_env` may not name `name`, or None."""
    if HOOK_SECRET.match(name):
        return None
    return (f"secret_env {name!r}: a webhook secret must come from a variable of its own, "
            "named BATON_HOOK_SECRET or BATON_HOOK_SECRET_<NAME> (such as "
            "BATON_HOOK_SECRET_DEPLOYS), so that no other setting can be used to sign requests")


def hook_secret_value_problem(name: str, value: str | None) -> str | None:
    """Why the webhook secret in `name` cannot be used yet, or None."""
    if not value:
        return f"{name} is not set on the Baton server"
    if len(value.encode()) < MIN_HOOK_SECRET_BYTES:
        return (f"{name} holds {len(value.encode())} bytes; a webhook secret must have at least "
                f"{MIN_HOOK_SECRET_BYTES} (for example `openssl rand -hex 32`)")
    return None
