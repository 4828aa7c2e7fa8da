"""The audit trail of administrative mutations (ORG_ADMIN and GLOBAL_ADMIN)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from db import audit
from resolvers.session import Caller

AUDITED_ROLES = frozenset({"org_admin", "global_admin"})


async def record(
    conn: asyncpg.Connection,
    caller: Caller,
    org: UUID | None,
    action: str,
    details: dict[str, Any],
) -> None:
    """In the mutation's own transaction; db.audit removes secret-looking values."""
    principal = caller.principal
    if principal.role in AUDITED_ROLES:
        await audit.record(
            conn,
            actor=principal.sub,
            role=principal.role,
            org_id=org,
            action=action,
            details=details,
        )


async def record_alone(caller: Caller, org: UUID, action: str, details: dict[str, Any]) -> None:
    """For mutations whose work is not a database transaction (runCheck, channel tests)."""
    if caller.principal.role in AUDITED_ROLES:
        await caller.as_caller(org, lambda c: record(c, caller, org, action, details))
