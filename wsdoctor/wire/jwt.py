"""Read a JWT's header and claims without verifying it: the `auth` check only needs its times.

"Authentication failing" is very often just an expired token; reading ``exp``/``nbf``/``iat`` tells the on-call
engineer so without the signing secret. Nothing here verifies a signature, and nothing returned holds the token
itself (only its claims' times and a few harmless claim names), so a decoded token can be shown safely.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class JwtError(ValueError):
    """The token is not a JWT (three base64url parts with JSON header and payload)."""


@dataclass
class JwtInfo:
    header: dict[str, Any]
    claims: dict[str, Any] = field(repr=False)  # may hold personal data: not in repr
    exp: datetime | None = None
    nbf: datetime | None = None
    iat: datetime | None = None

    @property
    def alg(self) -> str | None:
        a = self.header.get("alg")
        return a if isinstance(a, str) else None

    def expired(self, now: datetime | None = None, leeway: float = 0.0) -> bool:
        now = now or datetime.now(UTC)
        return self.exp is not None and now.timestamp() > self.exp.timestamp() + leeway

    def not_yet_valid(self, now: datetime | None = None, leeway: float = 0.0) -> bool:
        now = now or datetime.now(UTC)
        return self.nbf is not None and now.timestamp() + leeway < self.nbf.timestamp()

    def describe_times(self) -> str:
        """ "exp 2026-01-02 03:04:05 UTC, iat …" without any secret."""
        parts = []
        for name in ("iat", "nbf", "exp"):
            t = getattr(self, name)
            if t is not None:
                parts.append(f"{name} {fmt_time(t)}")
        return ", ".join(parts) or "no exp/nbf/iat claims"


def fmt_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _b64url(part: str) -> bytes:
    pad = "=" * (-len(part) % 4)
    try:
        return base64.urlsafe_b64decode(part + pad)
    except (binascii.Error, ValueError) as e:
        raise JwtError("the token is not a JWT: a part is not base64url") from e


def _time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def looks_like_jwt(token: str) -> bool:
    parts = token.strip().split(".")
    return len(parts) == 3 and parts[0].startswith("eyJ")


def decode(token: str) -> JwtInfo:
    """Header and claims of TOKEN, unverified. Raises JwtError (never echoing the token) when it is not a JWT."""
    text = token.strip()
    if text.lower().startswith("bearer "):
        text = text[7:].strip()
    parts = text.split(".")
    if len(parts) != 3:
        raise JwtError(f"the token is not a JWT (it has {len(parts)} dot-separated parts, a JWT has 3)")
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise JwtError("the token is not a JWT: its header or payload is not JSON") from e
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtError("the token is not a JWT: its header or payload is not a JSON object")
    return JwtInfo(
        header=header,
        claims=claims,
        exp=_time(claims.get("exp")),
        nbf=_time(claims.get("nbf")),
        iat=_time(claims.get("iat")),
    )


def try_decode(token: str | None) -> JwtInfo | None:
    if not token:
        return None
    try:
        return decode(token)
    except JwtError:
        return None
