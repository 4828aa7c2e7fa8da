"""How errors reach clients: the contract's codes, and nothing internal.

Domain errors (resolvers/errors.py) keep their message and get their code.
Errors about the request itself (syntax, validation, limits, bad variables)
are BAD_USER_INPUT. Anything else is logged with its context and masked as
INTERNAL_SERVER_ERROR: no stack, no SQL, no secret reaches a client.
"""

from __future__ import annotations

import structlog
from graphql.error import GraphQLError
from prometheus_client import Counter
from strawberry.extensions import MaskErrors

from resolvers.errors import ApiError

log = structlog.get_logger(__name__)

ERRORS = Counter("ihm_graphql_errors_total", "GraphQL errors returned", ["code"])


def _with(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    ERRORS.labels(str(extensions.get("code"))).inc()
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


class ErrorPolicy(MaskErrors):
    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._process(e) for e in errors]

    def _process(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, ApiError):
            return _with(error, original.message, original.as_extensions())
        if error.path is None:
            # Before execution: the document or its variables are wrong.
            return _with(error, error.message, {"code": "BAD_USER_INPUT"})
        log.error(
            "graphql_internal_error",
            path=".".join(str(p) for p in error.path),
            error=type(original).__name__ if original else "GraphQLError",
            exc_info=original,
        )
        return _with(error, "Internal server error.", {"code": "INTERNAL_SERVER_ERROR"})
