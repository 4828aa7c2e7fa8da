"""Minting signed tokens for local use (`ihm token`, `ihm up`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

from db.scope import ROLES

ALGORITHM = "HS256"


def mint_token(
    secret: str,
    *,
    role: str,
    org_id: UUID | None,
    sub: str,
    ttl_seconds: int,
    audience: str,
    issuer: str | None = None,
    now: datetime | None = None,
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if org_id is None and role != "global_admin":
        raise ValueError(f"a {role} token needs an org id")
    if ttl_seconds <= 0:
        raise ValueError("ttl must be positive")
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": sub,
        "role": role,
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=ttl_seconds)).timestamp()),
    }
    if org_id is not None:
        claims["org_id"] = str(org_id)
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
