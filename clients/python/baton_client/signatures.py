"""Checking the signature of a Baton callback, for the service that receives them.

`Baton-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, where the
secret is the token's callback secret (`whsec_...`, shown by `baton tokens create`)."""

from __future__ import annotations

import hashlib
import hmac
import time


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str | None, body: bytes, *, tolerance: float = 300,
                     now: float | None = None) -> bool:
    """Whether `header` signs exactly `body` with `secret`, at most `tolerance` seconds ago.
    False, never an exception, for any header a sender could write (the header is checked
    before anything is trusted, so it is the attacker's to choose)."""
    if not header:
        return False
    parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    # ASCII digits only, of a sane length: str.isdigit() admits "١٢٣" and int() fails
    # past 4,300 digits.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not given:
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    expected = sign(secret, int(stamp), body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
