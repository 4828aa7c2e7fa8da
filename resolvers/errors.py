"""Domain errors of the API, each with the contract's `extensions.code`.

Resolvers raise these; the GraphQL layer and the REST layer turn them into
their own error shapes. Anything else that escapes is an internal error:
logged with context, masked for the client.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    code = "INTERNAL_SERVER_ERROR"
    http_status = 500

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = extensions

    def as_extensions(self) -> dict[str, Any]:
        return {"code": self.code, **self.extensions}


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"
    http_status = 401


class Forbidden(ApiError):
    code = "FORBIDDEN"
    http_status = 403


class NotFound(ApiError):
    code = "NOT_FOUND"
    http_status = 404


class BadUserInput(ApiError):
    code = "BAD_USER_INPUT"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, **({"field": field} if field else {}))


class Conflict(ApiError):
    code = "CONFLICT"
    http_status = 409


class RateLimited(ApiError):
    code = "RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message, retryAfterSeconds=max(1, retry_after_seconds))
        self.retry_after_seconds = max(1, retry_after_seconds)
