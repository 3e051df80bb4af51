"""API token rows (`baton tokens ...`). Only a token's SHA-256 is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage import rows
from storage.models import ApiToken


def add_token(session: Session, values: dict[str, Any]) -> ApiToken | None:
    """Store a new token; None when a token of that name exists already."""
    token = ApiToken(**values)
    try:
        with rows.savepoint(session):
            session.add(token)
            session.flush()
    except IntegrityError:
        return None
    return token


def token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    """The token whose secret hashes to `token_hash` (an indexed, unique column)."""
    return session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()


def token_by_id(session: Session, token_id: int) -> ApiToken | None:
    return session.get(ApiToken, token_id)


def all_tokens(session: Session) -> list[ApiToken]:
    return list(session.exec(select(ApiToken).order_by(col(ApiToken.name))))


def revoke_token(session: Session, name: str, at: datetime) -> ApiToken | None:
    """Mark the named token revoked (once); None when there is no such token."""
    token = session.exec(select(ApiToken).where(ApiToken.name == name).with_for_update()).first()
    if token is not None and token.revoked_at is None:
        token.revoked_at = at
        session.add(token)
    return token
