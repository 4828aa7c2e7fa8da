"""One execution per event for identical subscriptions.

graphql-core executes a subscription's selection set once per event *per
subscriber*: a dashboard wall of 1,000 tabs on one org ran the same selection
1,000 times for every status change, which was most of the API's CPU. Here the
result is computed once and reused by every subscription that would compute the
same thing: the same event object (the resolvers build one per event and channel,
`shared`), the same document and variables, and a caller of the same role and org.
Authorization is not shared: each subscription's resolver still authorizes its own
caller before its stream starts, and the key holds role and org because what the
selection reads (RLS included) depends on nothing else.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from graphql import OperationType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

T = TypeVar("T")

_SHARED_KEY = "__ihm_shared__"
# On a shared object: {(document, operation, variables, role, org): result}
_RESULTS_ATTRIBUTE = "_ihm_results"


def shared(event: dict[str, Any], build: Callable[[dict[str, Any]], T]) -> T:
    """The one object built from this event (a pump hands every subscriber of its
    channel the same event dict), carrying the results computed from it."""
    found = event.get(_SHARED_KEY)
    if found is None:
        found = build(event)
        setattr(found, _RESULTS_ATTRIBUTE, {})
        event[_SHARED_KEY] = found
    return found


def share(results: dict[tuple[Any, ...], Any], key: tuple[Any, ...], run: Callable[[], Any]) -> Any:
    """The result stored under `key`, or `run()`'s, stored. An awaitable result becomes
    one task that later callers await too (one execution, even while it runs), each
    through a shield: a subscriber that leaves mid-execution must not cancel the task
    the others are waiting for."""
    found = results.get(key)
    if found is None:
        found = run()
        if inspect.isawaitable(found):
            found = asyncio.ensure_future(found)
        results[key] = found
    if isinstance(found, asyncio.Future):
        return asyncio.shield(found)
    return found


class SharedEventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def execute_operation(self, serially: bool | None = None) -> Any:
        results: dict[tuple[Any, ...], Any] | None = getattr(
            self.root_value, _RESULTS_ATTRIBUTE, None
        )
        key = self._share_key() if results is not None else None
        if results is None or key is None:
            return super().execute_operation(serially)
        return share(
            results,
            key,
            lambda: super(SharedEventExecutionContext, self).execute_operation(serially),
        )

    def _share_key(self) -> tuple[Any, ...] | None:
        if self.operation.operation is not OperationType.SUBSCRIPTION:
            return None
        if self.operation.loc is None:
            return None
        principal = getattr(self.context_value, "principal_", None)
        if principal is None:
            return None
        return (
            self.operation.loc.source.body,
            self.operation.name.value if self.operation.name else None,
            repr(sorted(self.variable_values.coerced.items())),
            principal.role,
            principal.org_id,
        )
