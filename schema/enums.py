"""The contract's enums."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="Stored check outcome. UNKNOWN: configured but never checked yet.")
class HealthStatus(Enum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNREACHABLE = "UNREACHABLE"
    UNKNOWN = "UNKNOWN"


@strawberry.enum(description="What a coordinator sees: green / yellow / red / grey.")
class ConnectionState(Enum):
    CONNECTED = "CONNECTED"
    DEGRADED = "DEGRADED"
    ERROR = "ERROR"
    PENDING = "PENDING"


@strawberry.enum
class ErrorCategory(Enum):
    AUTH = "AUTH"
    TIMEOUT = "TIMEOUT"
    NETWORK = "NETWORK"
    RATE_LIMITED = "RATE_LIMITED"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    CONFIGURATION = "CONFIGURATION"
    UNKNOWN = "UNKNOWN"


@strawberry.enum
class RecoveryAction(Enum):
    REAUTHENTICATE = "REAUTHENTICATE"
    UPDATE_CREDENTIALS = "UPDATE_CREDENTIALS"
    WAIT_AND_RETRY = "WAIT_AND_RETRY"
    CHECK_PROVIDER_STATUS = "CHECK_PROVIDER_STATUS"
    FIX_CONFIGURATION = "FIX_CONFIGURATION"
    CONTACT_SUPPORT = "CONTACT_SUPPORT"


@strawberry.enum
class TrendWindow(Enum):
    LAST_24_HOURS = "LAST_24_HOURS"
    LAST_7_DAYS = "LAST_7_DAYS"
    LAST_30_DAYS = "LAST_30_DAYS"


@strawberry.enum
class CheckTrigger(Enum):
    SCHEDULED = "SCHEDULED"
    MANUAL = "MANUAL"
    RETRY = "RETRY"
    PASSIVE = "PASSIVE"


@strawberry.enum
class MonitoringMode(Enum):
    ACTIVE = "ACTIVE"
    PASSIVE = "PASSIVE"


@strawberry.enum
class AlertState(Enum):
    FIRING = "FIRING"
    RESOLVED = "RESOLVED"


@strawberry.enum
class AlertSeverity(Enum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@strawberry.enum
class AlertKind(Enum):
    AUTH_FAILURE = "AUTH_FAILURE"
    UNREACHABLE = "UNREACHABLE"
    DEGRADED = "DEGRADED"
    EXPORT_FAILED = "EXPORT_FAILED"
    SCHEDULER_DRIFT = "SCHEDULER_DRIFT"


@strawberry.enum
class ExportRunStatus(Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@strawberry.enum
class Role(Enum):
    MEMBER = "MEMBER"
    COORDINATOR = "COORDINATOR"
    ORG_ADMIN = "ORG_ADMIN"
    SERVICE = "SERVICE"
    GLOBAL_ADMIN = "GLOBAL_ADMIN"


@strawberry.enum
class ChannelKind(Enum):
    IN_APP = "IN_APP"
    EMAIL = "EMAIL"
    WEBHOOK = "WEBHOOK"
    APPRISE = "APPRISE"


CONNECTION_STATE = {
    HealthStatus.HEALTHY: ConnectionState.CONNECTED,
    HealthStatus.DEGRADED: ConnectionState.DEGRADED,
    HealthStatus.UNREACHABLE: ConnectionState.ERROR,
    HealthStatus.UNKNOWN: ConnectionState.PENDING,
}


def health_status(stored: str | None) -> HealthStatus:
    return HealthStatus(stored.upper()) if stored else HealthStatus.UNKNOWN
