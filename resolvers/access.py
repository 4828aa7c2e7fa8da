"""Who may do what (DESIGN.md "Tokens and roles"), as plain functions of the principal."""

from __future__ import annotations

from uuid import UUID

from resolvers.auth import Principal
from resolvers.errors import BadUserInput, Forbidden

READ = frozenset({"member", "coordinator", "org_admin", "global_admin"})
RESPOND = frozenset({"coordinator", "org_admin", "global_admin"})  # ack/dismiss, notifications
RUN_CHECKS = frozenset({"coordinator", "org_admin", "service", "global_admin"})
CONFIGURE = frozenset({"org_admin", "global_admin"})
REPORT_EXPORTS = frozenset({"service", "org_admin", "global_admin"})
AUDIT = frozenset({"org_admin", "global_admin"})
GLOBAL = frozenset({"global_admin"})


def require(principal: Principal, allowed: frozenset[str], action: str) -> None:
    if principal.role not in allowed:
        raise Forbidden(f"The {principal.role} role may not {action}.")


def target_org(principal: Principal, org_id: UUID | None) -> UUID:
    """The org an operation acts on: the caller's own unless a global admin names another."""
    if not org_id:  # None, or left out by the client
        if principal.org_id is None:
            raise BadUserInput(
                "orgId is required: a global admin has no org of its own.", field="orgId"
            )
        return principal.org_id
    if org_id != principal.org_id and not principal.is_global_admin:
        raise Forbidden("Only a global admin may act on another organization.")
    return org_id
