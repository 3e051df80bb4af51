"""API tokens: created by an operator (`baton tokens create`), shown once, kept as a hash.

A token is `bt_` followed by 43 random URL-safe characters (256 bits). Baton stores its
SHA-256 and finds a presented token by that hash, so the secret itself is never stored,
logged or compared character by character. Each token also gets a callback signing
secret (`whsec_...`), shown once as well, which signs the callbacks of the runs it starts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gates.access import Caller
from gates.org import Org, SpecError
from orchestrator.errors import BatonError, Conflict, InputError, NotFound, Unauthorized
from orchestrator.loader import FlowCatalog
from storage import tokens as stored
from storage.engine import Database
from storage.models import ApiToken

PREFIX = "bt_"
SECRET_PREFIX = "whsec_"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
HINT = len(PREFIX) + 6  # the characters of a token `baton tokens list` shows


@dataclass(frozen=True)
class IssuedToken:
    """What `create` returns: the only time the secrets are seen."""

    name: str
    principal: str
    flows: list[str]
    token: str
    callback_secret: str
    expires_at: datetime | None


@dataclass(frozen=True)
class TokenInfo:
    name: str
    principal: str
    flows: list[str]
    hint: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and _aware(self.expires_at) <= now:
            return "expired"
        return "active"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def create(db: Database, org: Org, flows: FlowCatalog, name: str, principal: str,
           flow_names: Sequence[str], now: datetime, expires_in: timedelta | None = None,
           ) -> IssuedToken:
    """A new token acting as `principal`, for `flow_names`. Raises InputError naming the
    problem (unknown principal or flow, a flow the principal may never start, a bad name)."""
    if not NAME.match(name):
        raise InputError(f"token name {name!r}: use lower-case letters, digits, '.', '_', '-' "
                         "(at most 64)")
    try:
        who = org.principal(principal)
    except SpecError as exc:
        raise InputError(f"--as: {exc}") from None
    wanted = sorted({f.strip() for f in flow_names if f.strip()})
    if not wanted:
        raise InputError("--flows: name the flows this token may start (F1,F2)")
    for flow in wanted:
        program = flows.get(flow)  # NotFound / FlowError name the problem
        allowed = program.flow.requesters
        if allowed and who not in org.resolve_many(allowed):
            raise InputError(f"{org.display(who)} may never start {flow}: its requesters are "
                             + ", ".join(allowed))
    if expires_in is not None and expires_in <= timedelta(0):
        raise InputError("--expires must be a positive duration such as 90d")
    token = PREFIX + secrets.token_urlsafe(32)
    callback_secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + expires_in if expires_in is not None else None
    with db.write() as s:
        row = stored.add_token(s, {
            "name": name, "principal": who, "flows": wanted, "token_hash": hash_token(token),
            "hint": token[:HINT], "callback_secret": callback_secret, "created_at": now,
            "expires_at": expires_at})
    if row is None:
        raise Conflict(f"a token named {name!r} exists already; revoke it or pick another name")
    return IssuedToken(name, who, wanted, token, callback_secret, expires_at)


def listing(db: Database) -> list[TokenInfo]:
    with db.read() as s:
        return [TokenInfo(t.name, t.principal, list(t.flows), t.hint, t.created_at,
                          t.expires_at, t.revoked_at) for t in stored.all_tokens(s)]


def revoke(db: Database, name: str, now: datetime) -> bool:
    """Revoke the named token; False when it was revoked already."""
    with db.write() as s:
        token = stored.revoke_token(s, name, now)
        if token is None:
            raise NotFound(f"no token named {name!r}; `baton tokens list` shows them")
        return token.revoked_at == now


def authenticate(db: Database, org: Org, presented: str | None, now: datetime) -> Caller:
    """The caller a presented token stands for. Raises Unauthorized saying what is wrong
    (never echoing the token)."""
    if not presented:
        raise Unauthorized("send your API token: Authorization: Bearer bt_...")
    if not presented.startswith(PREFIX) or len(presented) > 200:
        raise Unauthorized("that is not a Baton API token (they start with bt_)")
    digest = hash_token(presented)
    with db.read() as s:
        token = stored.token_by_hash(s, digest)
    # Found by its hash (a unique index), so nothing compares the secret itself; the
    # constant-time comparison only keeps the rule simple to check.
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        raise Unauthorized("unknown API token")
    return caller_of(token, org, now)


def reauthenticate(db: Database, org: Org, caller: Caller, now: datetime) -> Caller:
    """`caller` again, as its token stands now: a long poll that began before its token was
    revoked, or that outlived its expiry, gets 401 like any request, not the run."""
    with db.read() as s:
        token = stored.token_by_id(s, caller.token_id)
    if token is None:
        raise Unauthorized(f"API token {caller.token!r} is gone")
    return caller_of(token, org, now)


def caller_of(token: ApiToken, org: Org, now: datetime) -> Caller:
    if token.revoked_at is not None:
        raise Unauthorized(f"API token {token.name!r} was revoked")
    if token.expires_at is not None and _aware(token.expires_at) <= now:
        raise Unauthorized(f"API token {token.name!r} expired at "
                           f"{_aware(token.expires_at):%Y-%m-%d %H:%M} UTC")
    try:
        principal = org.principal(token.principal)
    except SpecError:
        raise Unauthorized(f"API token {token.name!r} acts as {token.principal}, whom the org "
                           "file no longer declares") from None
    assert token.id is not None
    return Caller(token.id, token.name, principal, frozenset(token.flows))


def callback_secret(db: Database, token_id: int) -> str:
    with db.read() as s:
        token = stored.token_by_id(s, token_id)
    if token is None:
        raise BatonError(f"token {token_id} is gone")
    return token.callback_secret
