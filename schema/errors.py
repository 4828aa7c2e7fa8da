"""How errors reach clients: the contract's codes, and nothing internal.

Domain errors (resolvers/errors.py) keep their message and get their code.
Errors about the request itself (syntax, validation, limits, bad variables)
are BAD_USER_INPUT. Anything else is logged with its context and masked as
INTERNAL_SERVER_ERROR: no stack, no SQL, no secret reaches a client.
"""

from __future__ import annotations

import re

import structlog
from graphql.error import GraphQLError
from prometheus_client import Counter
from strawberry.extensions import MaskErrors

from resolvers.errors import ApiError

log = structlog.get_logger(__name__)

ERRORS = Counter("ihm_graphql_errors_total", "GraphQL errors returned", ["code"])
INTERNAL_MESSAGE = "Internal server error."

# graphql-core prints a whole bad input object back ("…, found: {'target': …, 'secret': …}"):
# a channel's token or a pasted credential would travel back in the error. Keep the reason.
_ECHOED_VALUE = re.compile(r",? found: .*\Z", re.DOTALL)


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


def is_internal(error: GraphQLError) -> bool:
    """Raised while resolving, and not one of ours: a bug or an outage, never the client's."""
    return error.path is not None and not isinstance(error.original_error, ApiError)


def log_internal(errors: list[GraphQLError]) -> None:
    """Schema.process_errors: log what went wrong on our side, once, without the query text.

    Strawberry's default logs every error, the client's included, with the document's
    source lines: credentials written into a mutation would land in the log.
    """
    for error in errors:
        if is_internal(error):
            log.error(
                "graphql_internal_error",
                path=".".join(str(p) for p in error.path or ()),
                error=type(error.original_error).__name__ if error.original_error else None,
                exc_info=error.original_error,
            )


def _client_message(message: str) -> str:
    if message.startswith("Variable '$"):
        return _ECHOED_VALUE.sub(".", message)
    return message


class ErrorPolicy(MaskErrors):
    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._process(e) for e in errors]

    def _process(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if isinstance(original, ApiError):
            return _with(error, original.message, original.as_extensions())
        if not is_internal(error):
            # Before execution: the document or its variables are wrong.
            return _with(error, _client_message(error.message), {"code": "BAD_USER_INPUT"})
        return _with(error, INTERNAL_MESSAGE, {"code": "INTERNAL_SERVER_ERROR"})


def contract_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    """A last net: an error without a code escaped the ErrorPolicy (an exception raised by
    an extension or validation rule ends the operation before it runs). Log and mask it."""
    checked = []
    for error in errors:
        if (error.extensions or {}).get("code"):
            checked.append(error)
            continue
        original = error.original_error
        log.error(
            "graphql_unhandled_error",
            error=type(original).__name__ if original else "GraphQLError",
            exc_info=original,
        )
        checked.append(_with(error, INTERNAL_MESSAGE, {"code": "INTERNAL_SERVER_ERROR"}))
    return checked
