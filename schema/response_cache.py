"""A short-lived cache of health reads, for dashboards that poll.

A wall of dashboards asks `orgHealth` for the same org again and again; the answer
changes only when a check lands (every check publishes a status event), when an
alert moves or when someone changes the configuration. Executing the same
3,000-field selection for each poll cost some 35 ms of CPU per request.

Only queries whose root fields are all in `CACHEABLE_ROOTS` are kept, keyed by the
exact document, operation and variables and by the caller's role and org (what the
selection may read depends on nothing else; global admins are never cached). An
entry is used only while
- its org's generation has not moved: a status event (every check) or an alert event
  (every alert change) for the org moves it, and any mutation through this process
  clears everything;
- it is younger than `TTL_SECONDS`, the bound on what no event announces (another
  API process's mutation, a trend window sliding). Each refresh is one execution that
  holds the event loop for some 40 ms: at 2 s the refreshes alone put the dashboards'
  p99 over 70 ms (bench_api), at 5 s under 50 ms.
Each hit is still authenticated first: the token is verified on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar
from uuid import UUID

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from prometheus_client import Counter

from resolvers.auth import Principal

T = TypeVar("T")

CACHEABLE_ROOTS = frozenset({"orgHealth", "integrationHealth", "healthTrend"})
TTL_SECONDS = 5.0
MAX_ENTRIES = 2000

LOOKUPS = Counter("ihm_query_cache_lookups_total", "Cacheable query lookups", ["outcome"])


@dataclass(frozen=True)
class _Entry:
    result: Any
    generation: int
    stored_at: float


# Longer documents are never classified (nor kept in the classification cache): a
# dashboard's health read is a few hundred bytes.
MAX_CLASSIFIED_CHARS = 20_000
MAX_CLASSIFIED_TOKENS = 5000  # as schema.root.MAX_TOKENS


@lru_cache(maxsize=512)
def _operation_kind(query: str, operation_name: str | None) -> str:
    """'cacheable', 'mutation' or 'other' for this document and operation."""
    try:
        document = parse(query, max_tokens=MAX_CLASSIFIED_TOKENS)
    except GraphQLError:
        return "other"
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name is not None and o.name.value == operation_name)
    ]
    if len(chosen) != 1:
        return "other"
    operation = chosen[0]
    if operation.operation is OperationType.MUTATION:
        return "mutation"
    if operation.operation is not OperationType.QUERY or operation.directives:
        return "other"
    roots = operation.selection_set.selections
    if all(
        isinstance(s, FieldNode) and s.name.value in CACHEABLE_ROOTS and not s.directives
        for s in roots
    ):
        return "cacheable"
    return "other"


class ResponseCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._generations: dict[UUID, int] = {}
        self._epoch = 0  # moves on clear(): every entry before it is void
        self._pending: dict[tuple[Any, ...], asyncio.Future[Any]] = {}

    # -- invalidation ----------------------------------------------------------

    def org_changed(self, org_id: UUID) -> None:
        self._generations[org_id] = self._generations.get(org_id, 0) + 1

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()

    def _generation(self, org_id: UUID) -> int:
        return self._generations.get(org_id, 0) + (self._epoch << 32)

    # -- lookups ---------------------------------------------------------------

    @staticmethod
    def kind(query: object, operation_name: object) -> str:
        """Anything unusual (not text, too long) is 'other': the normal path answers it.
        A mutation too long to classify still clears the cache, to be safe."""
        if not isinstance(query, str) or not query:
            return "other"
        if len(query) > MAX_CLASSIFIED_CHARS:
            return "mutation" if "mutation" in query else "other"
        if operation_name is not None and not isinstance(operation_name, str):
            return "other"
        return _operation_kind(query, operation_name)

    @staticmethod
    def key(
        principal: Principal | None,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
    ) -> tuple[Any, ...] | None:
        if principal is None or principal.org_id is None or principal.is_global_admin:
            return None
        return (
            principal.role,
            principal.org_id,
            query,
            operation_name,
            repr(sorted((variables or {}).items())),
        )

    def get(self, key: tuple[Any, ...], *, count_miss: bool = True) -> Any | None:
        entry = self._entries.get(key)
        org_id: UUID = key[1]
        if entry is None:
            if count_miss:
                LOOKUPS.labels("miss").inc()
            return None
        if (
            entry.generation != self._generation(org_id)
            or self._clock() - entry.stored_at > TTL_SECONDS
        ):
            del self._entries[key]
            LOOKUPS.labels("stale").inc()
            return None
        self._entries.move_to_end(key)
        LOOKUPS.labels("hit").inc()
        return entry.result

    def start(self, key: tuple[Any, ...]) -> tuple[tuple[Any, ...], int]:
        """The generation a result is computed at: stored only if nothing moved since."""
        return key, self._generation(key[1])

    async def through(
        self,
        key: tuple[Any, ...],
        compute: Callable[[], Awaitable[T]],
        keep: Callable[[T], bool],
    ) -> tuple[T, bool]:
        """The cached result, or the one being computed for the same key (concurrent
        misses wait for one execution instead of each running their own when an entry
        expires), or a new one. Returns the result and whether it was shared."""
        found = self.get(key)
        if found is not None:
            return found, True
        pending = self._pending.get(key)
        if pending is not None:
            with contextlib.suppress(Exception):  # its computation failed: run our own
                result: T = await asyncio.shield(pending)
                LOOKUPS.labels("joined").inc()
                return result, True
        started = self.start(key)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await compute()
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else RuntimeError())
            future.exception()  # retrieved: waiters that were not there need not hear
            raise
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
        future.set_result(result)
        if keep(result):
            self.put(started, result)
        return result, False

    def put(self, started: tuple[tuple[Any, ...], int], result: Any) -> None:
        key, generation = started
        if generation != self._generation(key[1]):
            return  # the data moved while this was computed
        self._entries[key] = _Entry(result, generation, self._clock())
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
