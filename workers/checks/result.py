"""What a check returns: status, latency, and for failures a classified error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNREACHABLE = "unreachable"


class ErrorCategory(StrEnum):
    AUTH = "AUTH"
    TIMEOUT = "TIMEOUT"
    NETWORK = "NETWORK"
    RATE_LIMITED = "RATE_LIMITED"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    CONFIGURATION = "CONFIGURATION"
    UNKNOWN = "UNKNOWN"


class RecoveryAction(StrEnum):
    REAUTHENTICATE = "REAUTHENTICATE"
    UPDATE_CREDENTIALS = "UPDATE_CREDENTIALS"
    WAIT_AND_RETRY = "WAIT_AND_RETRY"
    CHECK_PROVIDER_STATUS = "CHECK_PROVIDER_STATUS"
    FIX_CONFIGURATION = "FIX_CONFIGURATION"
    CONTACT_SUPPORT = "CONTACT_SUPPORT"


@dataclass(frozen=True)
class HealthError:
    """A failure in words a coordinator understands; never a raw provider body."""

    category: ErrorCategory
    message: str
    guidance: str
    recovery_action: RecoveryAction
    docs_url: str | None = None
    # Worth one quick retry before declaring failure (network blips, 5xx).
    transient: bool = False
    retry_after_seconds: float | None = None


@dataclass(frozen=True)
class HealthResult:
    status: Status
    latency_ms: int
    checked_at: datetime
    error: HealthError | None = None

    def __post_init__(self) -> None:
        if (self.status is Status.HEALTHY) != (self.error is None):
            raise ValueError("a healthy result has no error; any other result has one")
