"""Bearer tokens: verification (HS256, or RS256 through the JWKS) into a Principal.

The algorithm is pinned per key: an HS256 token is checked only with the
shared secret, an RS256 one only with the identity provider's keys; `none`
and anything else are refused. `exp` is required. Org roles need the org
audience and an org id; `global_admin` needs the admin audience, so an org
audience token claiming it is refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import jwt
from jwt import PyJWKClient

from db.scope import ROLES, Claims
from resolvers.errors import Unauthenticated
from settings import Settings

LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Principal:
    sub: str
    role: str
    org_id: UUID | None
    expires_at: datetime

    @property
    def is_global_admin(self) -> bool:
        return self.role == "global_admin"

    def claims_for(self, org_id: UUID | None) -> Claims:
        """Claims for a unit of work on `org_id` (global admins act on one org at a time)."""
        return Claims(sub=self.sub, role=self.role, org_id=org_id)


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._audience = settings.jwt_audience
        self._admin_audience = settings.admin_audience
        self._issuer = settings.jwt_issuer
        self._jwks = PyJWKClient(settings.jwks_url, cache_keys=True) if settings.jwks_url else None

    async def verify_header(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("Missing bearer token: send `Authorization: Bearer <token>`.")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("The Authorization header must be `Bearer <token>`.")
        return await self.verify(token.strip())

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("The token is malformed.") from None
        algorithm = header.get("alg")
        if algorithm == "HS256" and self._secret:
            key: object = self._secret
        elif algorithm == "RS256" and self._jwks is not None:
            try:
                # PyJWKClient fetches over blocking HTTP; keep it off the event loop.
                signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            except jwt.PyJWKClientError:
                raise Unauthenticated("The token's signing key is unknown.") from None
            key = signing.key
        else:
            raise Unauthenticated(f"Tokens signed with {algorithm!r} are not accepted.")
        try:
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[algorithm],
                audience=[self._audience, self._admin_audience],
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "role", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("The token has expired.") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("The token is not meant for this service (audience).") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("The token is invalid.") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, object]) -> Principal:
        role = claims.get("role")
        if role not in ROLES:
            raise Unauthenticated("The token's role is not one of this service's roles.")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        wanted = self._admin_audience if role == "global_admin" else self._audience
        if wanted not in audiences:
            raise Unauthenticated(f"A {role} token must be issued for the audience {wanted!r}.")
        org_id: UUID | None = None
        raw_org = claims.get("org_id")
        if raw_org is not None:
            try:
                org_id = UUID(str(raw_org))
            except ValueError:
                raise Unauthenticated("The token's org_id is not a UUID.") from None
        if org_id is None and role != "global_admin":
            raise Unauthenticated(f"A {role} token must carry an org_id.")
        expires = datetime.fromtimestamp(float(str(claims["exp"])), UTC)
        return Principal(sub=str(claims["sub"]), role=str(role), org_id=org_id, expires_at=expires)
