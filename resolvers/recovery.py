"""Recovery flows: re-authorizing an OAuth integration, testing a notification channel."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlparse
from uuid import UUID

import asyncpg
import httpx
import jwt
import structlog
from arq.connections import ArqRedis

from db import audit, credentials, integrations
from db.scope import Claims, as_caller
from db.vault import Vault, VaultError
from resolvers import audit_trail
from resolvers.access import CONFIGURE, require, target_org
from resolvers.alerting import channel_for_test
from resolvers.errors import BadUserInput, NotFound
from resolvers.session import Caller
from settings import Settings
from workers.checks.config import parse_config
from workers.jobs import check_job_id

log = structlog.get_logger(__name__)

STATE_AUDIENCE = "ihm-oauth-state"
STATE_TTL = timedelta(minutes=10)
TEST_WAIT_SECONDS = 20.0

# What the monitor needs to read, per OAuth provider (the least that proves access).
OAUTH_PROVIDERS = {
    "gmail": (
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://www.googleapis.com/auth/gmail.readonly",
    ),
    "google_calendar": (
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://www.googleapis.com/auth/calendar",
    ),
}


@dataclass(frozen=True)
class ReauthorizationLink:
    authorization_url: str
    state: str
    expires_at: datetime


def _check_redirect(uri: str) -> None:
    parsed = urlparse(uri)
    local = parsed.hostname in ("localhost", "127.0.0.1", "::1")
    if not parsed.netloc or not (parsed.scheme == "https" or (parsed.scheme == "http" and local)):
        raise BadUserInput(
            "redirectUri must be an absolute https:// URL (http:// only for localhost).",
            field="redirectUri",
        )
    if parsed.fragment:
        raise BadUserInput("redirectUri must not carry a #fragment.", field="redirectUri")


def sign_state(settings: Settings, claims: dict[str, str], now: datetime) -> str:
    payload = {
        **claims,
        "aud": STATE_AUDIENCE,
        "exp": now + STATE_TTL,
        "iat": now,
        "nonce": secrets.token_urlsafe(16),
    }
    return jwt.encode(payload, settings.require_jwt_secret(), algorithm="HS256")


def read_state(settings: Settings, state: str) -> dict[str, str]:
    """The claims of a state this API signed; raises jwt.InvalidTokenError otherwise."""
    return jwt.decode(
        state,
        settings.require_jwt_secret(),
        algorithms=["HS256"],
        audience=STATE_AUDIENCE,
        options={"require": ["exp", "aud", "org", "type", "redirect_uri"]},
    )


async def start_reauthorization(
    caller: Caller,
    vault: Vault,
    settings: Settings,
    integration_type: str,
    redirect_uri: str,
    org_id: UUID | None,
) -> ReauthorizationLink:
    principal = caller.principal
    require(principal, CONFIGURE, "re-authorize integrations")
    org = target_org(principal, org_id)
    if integration_type not in OAUTH_PROVIDERS:
        raise BadUserInput(
            f"{integration_type!r} does not sign in with OAuth; update its credentials instead.",
            field="integrationType",
        )
    _check_redirect(redirect_uri)
    found = await caller.as_caller(org, lambda c: integrations.get(c, org, integration_type))
    if found is None:
        raise NotFound(f"No {integration_type!r} integration is configured for this organization.")
    try:
        secret = await caller.as_caller(
            org, lambda c: credentials.load_for_reauthorization(c, vault, found.id)
        )
    except VaultError:
        secret = None
    client_id = secret.get("clientId") if secret else None
    if not client_id:
        raise BadUserInput(
            "Store the OAuth client (clientId, clientSecret) with setIntegrationCredentials first.",
            field="integrationType",
        )
    now = datetime.now(UTC)
    state = sign_state(
        settings,
        {
            "org": str(org),
            "type": integration_type,
            "redirect_uri": redirect_uri,
            "sub": principal.sub,
        },
        now,
    )
    await audit_trail.record_alone(
        caller,
        org,
        "startReauthorization",
        {"integrationType": integration_type, "redirectUri": redirect_uri},
    )
    authorize, scope = OAUTH_PROVIDERS[integration_type]
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": scope,
            "access_type": "offline",
            "prompt": "consent",
            "include_granted_scopes": "true",
            "state": state,
        }
    )
    return ReauthorizationLink(f"{authorize}?{query}", state, now + STATE_TTL)


async def complete_reauthorization(
    *,
    settings: Settings,
    vault: Vault,
    pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    queue: ArqRedis,
    state: str,
    code: str,
) -> str:
    """The OAuth callback: check the state, exchange the code, store the tokens, check now.

    The state (signed by this API, expiring) is the authorization: it names the org,
    the integration and the admin who started the flow, whose claims the writes use.
    Returns the integration type.
    """
    try:
        claims = read_state(settings, state)
        org, kind = UUID(claims["org"]), claims["type"]
        role = claims.get("role", "org_admin")
        caller = Claims(sub=str(claims.get("sub", "oauth")), role=role, org_id=org)
    except (jwt.InvalidTokenError, KeyError, ValueError):
        raise BadUserInput(
            "This authorization link is invalid or has expired: start again.", field="state"
        ) from None
    if kind not in OAUTH_PROVIDERS or role not in ("org_admin", "global_admin"):
        raise BadUserInput(
            "This authorization link is not for an OAuth integration.", field="state"
        )
    async with as_caller(pool, caller) as conn:
        found = await integrations.get(conn, org, kind)
        if found is None:
            raise NotFound(f"The {kind} integration no longer exists.")
        secret = await credentials.load_for_reauthorization(conn, vault, found.id)
    if secret is None:
        raise BadUserInput(
            "The OAuth client credentials are gone: store them again.", field="state"
        )
    config = parse_config(kind, found.config)
    token_url = str(getattr(config, "token_url", ""))
    try:
        response = await http.post(
            token_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": secret.get("clientId"),
                "client_secret": secret.get("clientSecret"),
                "redirect_uri": claims["redirect_uri"],
            },
        )
        body = response.json()
    except (httpx.HTTPError, ValueError):
        raise BadUserInput(
            "The provider could not be reached to finish the sign-in; try again.", field="code"
        ) from None
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        reason = body.get("error") if isinstance(body, dict) else None
        raise BadUserInput(
            f"The provider refused the sign-in ({reason or response.status_code}): start again.",
            field="code",
        )
    tokens = {**secret.reveal(), "accessToken": body["access_token"]}
    if body.get("refresh_token"):
        tokens["refreshToken"] = body["refresh_token"]
    async with as_caller(pool, caller) as conn:
        await credentials.store(conn, vault, org_id=org, integration_id=found.id, payload=tokens)
        await audit.record(
            conn,
            actor=caller.sub,
            role=role,
            org_id=org,
            action="completeReauthorization",
            details={"integrationType": kind},
        )
    await queue.enqueue_job(
        "check_integration", str(org), kind, trigger="manual", _job_id=check_job_id(org, kind)
    )
    return kind


async def test_channel(caller: Caller, queue: ArqRedis, channel_id: UUID) -> bool:
    """Deliver a test message through the channel now (by the worker); True when delivered."""
    channel = await channel_for_test(caller, channel_id)
    await audit_trail.record_alone(
        caller, channel.org_id, "testNotificationChannel", {"channelId": str(channel.id)}
    )
    job = await queue.enqueue_job("test_channel", str(channel.org_id), str(channel.id))
    if job is None:
        return False
    try:
        delivered = await job.result(timeout=TEST_WAIT_SECONDS, poll_delay=0.1)
    except Exception as exc:
        log.warning("channel_test_failed", channel_id=str(channel_id), error=type(exc).__name__)
        return False
    return bool(delivered)
