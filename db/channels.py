"""Notification channels: the target and signing secret encrypted, only a masked target readable.

Targets carry secrets (webhook tokens in paths and queries, Apprise URLs with
bot tokens and passwords), so the whole target is sealed in the vault like
the secret, bound to the channel's id; `target_masked` is what everyone else
reads. The API role's SELECT grant covers exactly the `Channel` columns:
decrypting (`load_secret_target`) is the worker's, as the service role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from db.vault import Sealed, Vault, channel_secret_aad, channel_target_aad

KINDS = ("IN_APP", "EMAIL", "WEBHOOK", "APPRISE")
MASK = "***"


@dataclass(frozen=True)
class Channel:
    id: UUID
    org_id: UUID
    kind: str  # IN_APP | EMAIL | WEBHOOK | APPRISE
    target_masked: str
    min_severity: str
    enabled: bool
    consecutive_failures: int
    failing_since: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Channel:
        return cls(**dict(row))


# -- validation and masking (pure) ----------------------------------------------

MAX_TARGET_LENGTH = 2048
_EMAIL = re.compile(r"^[^@\s,;<>]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def validate_target(kind: str, target: str) -> str | None:
    """What is wrong with a channel's target, in words for the user; None when it is usable.

    The message never repeats the target (it may hold a token).
    """
    target = target.strip()
    if kind not in KINDS:
        return f"Unknown channel kind; use one of {', '.join(KINDS)}."
    if len(target) > MAX_TARGET_LENGTH:
        return f"The target is longer than {MAX_TARGET_LENGTH} characters."
    if kind == "IN_APP":
        return None
    if not target:
        return "The target is required."
    if kind == "EMAIL":
        addresses = [a.strip() for a in re.split(r"[,;]", target)]
        if not all(_EMAIL.match(a) for a in addresses):
            return "Enter email addresses like name@example.com, separated by commas."
        return None
    if kind == "WEBHOOK":
        scheme, sep, rest = target.partition("://")
        host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
        if not sep or scheme.lower() not in ("http", "https") or not host or " " in target:
            return "Enter the webhook as an http:// or https:// URL."
        return None
    if not _URL.match(target):
        return "Enter an Apprise URL such as tgram://bot_token/chat_id."
    return None


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9-]{1,63}$")
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Apprise path targets that name a channel or user, not a credential.
_APPRISE_TARGET = re.compile(r"^[#@][A-Za-z0-9_.-]{1,80}$")


def mask_target(kind: str, target: str) -> str:
    """The target as anyone may see it: identifiable, with every secret part replaced by ***.

    - EMAIL: `alice@example.com` -> `a***@example.com` (each of a comma-separated list).
    - WEBHOOK: scheme, host, port and path kept, except path segments that could
      be tokens; user info, query values and fragment masked.
    - APPRISE: scheme kept, the host only when it is a real DNS name (in Apprise
      URLs the "host" is often a token, `tgram://bot:token/...`), user info and
      every path segment masked but `#channel`/`@user`, query values masked.
    - IN_APP: no target to speak of; kept, masked like Apprise if it is a URL.
    Anything that does not parse comes back as `***`.
    """
    target = target.strip()
    if kind == "EMAIL":
        return ", ".join(_mask_email(a) for a in re.split(r"[,;]", target) if a.strip()) or MASK
    if kind == "WEBHOOK":
        return _mask_url(target, apprise=False)
    if kind == "APPRISE":
        return _mask_url(target, apprise=True)
    if kind == "IN_APP":
        return _mask_url(target, apprise=True) if "://" in target else target
    raise ValueError(f"unknown channel kind {kind!r}")


def _mask_email(address: str) -> str:
    address = address.strip()
    if address.lower().startswith("mailto:"):
        address = address[len("mailto:") :]
    local, at, domain = address.rpartition("@")
    domain = re.split(r"[?/#]", domain, maxsplit=1)[0]
    if not at or not local or not _is_hostname(domain):
        return MASK
    return f"{local[0]}{MASK}@{domain}"


def _mask_url(url: str, *, apprise: bool) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        return MASK
    fragment = None
    if not apprise:
        # In Apprise URLs `#` starts a channel name inside the path.
        rest, hash_, frag = rest.partition("#")
        fragment = MASK if hash_ and frag else ("" if hash_ else None)
    rest, question, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    _userinfo, at, hostport = netloc.rpartition("@")

    out = f"{scheme}://"
    if at:
        out += f"{MASK}@"
    out += _mask_hostport(hostport, keep_host=not apprise)
    if slash:
        segments = path.split("/")
        masker = _mask_apprise_segment if apprise else _mask_path_segment
        out += "/" + "/".join(masker(s) for s in segments)
    if question:
        out += "?" + _mask_query(query)
    if fragment is not None:
        out += "#" + fragment
    return out


def _mask_hostport(hostport: str, *, keep_host: bool) -> str:
    if hostport.startswith("["):  # IPv6 literal
        host, bracket, port = hostport.partition("]")
        host += bracket
        port = port.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    if not host:
        return MASK if port else ""
    if not (_is_hostname(host) or (keep_host and not _looks_secret(host))):
        # The "host" is a credential (`tgram://bot_id:token`): its port part too.
        return MASK
    if port:
        return f"{host}:{port if port.isdigit() else MASK}"
    return host


def _is_hostname(host: str) -> bool:
    """A DNS name with a dot, or an address: the kind of host that is no secret."""
    if host.startswith("[") and host.endswith("]"):
        return True
    labels = host.split(".")
    return (
        len(labels) >= 2
        and all(_HOST_LABEL.match(label) for label in labels)
        and not any(_looks_secret(label, min_mixed=20) for label in labels)
    )


def _looks_secret(value: str, *, min_mixed: int = 8) -> bool:
    """Could be a token: long, or mixing letters and digits, or carrying a separator of one."""
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return (
        ":" in value
        or "@" in value
        or len(value) >= 20
        or (len(value) >= min_mixed and has_digit and has_alpha)
    )


def _mask_path_segment(segment: str) -> str:
    return MASK if segment and _looks_secret(segment) else segment


def _mask_apprise_segment(segment: str) -> str:
    return segment if not segment or _APPRISE_TARGET.match(segment) else MASK


def _mask_query(query: str) -> str:
    params = []
    for param in query.split("&"):
        name, eq, _value = param.partition("=")
        if not param:
            params.append("")
        elif eq and _PARAM_NAME.match(name):
            params.append(f"{name}={MASK}")
        else:
            params.append(MASK)
    return "&".join(params)


# -- persistence ----------------------------------------------------------------

_COLUMNS = (
    "id, org_id, kind, target_masked, min_severity, enabled, consecutive_failures, "
    "failing_since, created_at"
)
# RETURNING names only columns the API role may read.
_ADD = f"""
INSERT INTO notification_channels
    (id, org_id, kind, target_masked, target_key_id, target_ciphertext,
     secret_key_id, secret_ciphertext, min_severity)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {_COLUMNS}
"""
_LIST_FOR_ORG = (
    f"SELECT {_COLUMNS} FROM notification_channels WHERE org_id = $1 ORDER BY created_at, id"
)
_GET = f"SELECT {_COLUMNS} FROM notification_channels WHERE id = $1"
_ORG_OF = "SELECT ihm_global_channel_org($1)"
_REMOVE = "DELETE FROM notification_channels WHERE id = $1"
_LOAD_SECRETS = """
SELECT target_key_id, target_ciphertext, secret_key_id, secret_ciphertext
  FROM notification_channels WHERE id = $1
"""
# A failure starts (or extends) a failing streak; a success ends it.
_RECORD_DELIVERY = f"""
UPDATE notification_channels
   SET consecutive_failures = CASE WHEN $2 THEN 0 ELSE consecutive_failures + 1 END,
       failing_since = CASE WHEN $2 THEN NULL ELSE coalesce(failing_since, $3) END
 WHERE id = $1
RETURNING {_COLUMNS}
"""


async def add(
    conn: asyncpg.Connection,
    vault: Vault,
    *,
    org_id: UUID,
    kind: str,
    target: str,
    secret: str | None,
    min_severity: str,
) -> Channel:
    """Store a channel, target and secret sealed to its id. Works as the API role."""
    masked = mask_target(kind, target)  # also refuses an unknown kind
    # The id is part of the ciphertexts' associated data, so it is chosen here.
    channel_id = uuid4()
    sealed_target = vault.encrypt_text(target.strip(), aad=channel_target_aad(channel_id))
    sealed_secret = (
        vault.encrypt_text(secret, aad=channel_secret_aad(channel_id)) if secret else None
    )
    row = await conn.fetchrow(
        _ADD,
        channel_id,
        org_id,
        kind,
        masked,
        sealed_target.key_id,
        sealed_target.ciphertext,
        sealed_secret.key_id if sealed_secret else None,
        sealed_secret.ciphertext if sealed_secret else None,
        min_severity,
    )
    return Channel.from_row(row)


async def list_for_org(conn: asyncpg.Connection, org_id: UUID) -> list[Channel]:
    """Oldest first."""
    return [Channel.from_row(r) for r in await conn.fetch(_LIST_FOR_ORG, org_id)]


async def get(conn: asyncpg.Connection, channel_id: UUID) -> Channel | None:
    row = await conn.fetchrow(_GET, channel_id)
    return Channel.from_row(row) if row else None


async def org_of(conn: asyncpg.Connection, channel_id: UUID) -> UUID | None:
    """The channel's org, across orgs: global admins only (InsufficientPrivilegeError otherwise)."""
    org: UUID | None = await conn.fetchval(_ORG_OF, channel_id)
    return org


async def remove(conn: asyncpg.Connection, channel_id: UUID) -> bool:
    """True when a channel was removed (its pending deliveries go with it)."""
    status: str = await conn.execute(_REMOVE, channel_id)
    return status == "DELETE 1"


async def load_secret_target(
    conn: asyncpg.Connection, vault: Vault, channel_id: UUID
) -> tuple[str, str | None]:
    """The decrypted target and signing secret (None when none was given). Service role only.

    LookupError when the channel does not exist or has no stored target;
    a `VaultError` when its key is gone or the data was tampered with.
    """
    row = await conn.fetchrow(_LOAD_SECRETS, channel_id)
    if row is None:
        raise LookupError(f"no notification channel {channel_id}")
    if row["target_ciphertext"] is None:
        raise LookupError(f"notification channel {channel_id} has no stored target")
    target = vault.decrypt_text(
        Sealed(row["target_key_id"], row["target_ciphertext"]),
        aad=channel_target_aad(channel_id),
        what=f"secrets of notification channel {channel_id} (target)",
    )
    secret = None
    if row["secret_ciphertext"] is not None:
        secret = vault.decrypt_text(
            Sealed(row["secret_key_id"], row["secret_ciphertext"]),
            aad=channel_secret_aad(channel_id),
            what=f"secrets of notification channel {channel_id} (secret)",
        )
    return target, secret


async def record_delivery(
    conn: asyncpg.Connection, channel_id: UUID, *, ok: bool, at: datetime
) -> Channel | None:
    """Worker: count a delivery outcome (consecutive_failures, failing_since)."""
    row = await conn.fetchrow(_RECORD_DELIVERY, channel_id, ok, at)
    return Channel.from_row(row) if row else None
