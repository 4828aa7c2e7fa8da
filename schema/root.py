"""The GraphQL schema: roots, limits and error policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError, KnownFragmentNamesRule, validate
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult

from schema.errors import ErrorPolicy, contract_errors, log_internal
from schema.mutation import Mutation
from schema.query import Query
from schema.shared_events import SharedEventExecutionContext
from schema.subscription import Subscription

MAX_DEPTH = 12
MAX_ALIASES = 50
MAX_TOKENS = 5000


class RejectUnknownFragments(SchemaExtension):
    """Answer a spread of an undefined fragment before the other rules run.

    Strawberry's depth limiter looks every spread up unguarded: `{ ...Nope }` raised a
    KeyError that ended the operation outside the error policy (a bare "'Nope'", no code).
    Pre-execution errors set here make Strawberry skip the remaining validation.
    """

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.pre_execution_errors is None:
            unknown = validate(
                context.schema._schema, context.graphql_document, [KnownFragmentNamesRule]
            )
            if unknown:
                context.pre_execution_errors = unknown
        yield


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_internal(errors)

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        result = await super().execute(*args, **kwargs)
        if result.errors:
            result.errors = contract_errors(result.errors)
        return result


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
    # Factories: Strawberry builds fresh extension instances per request.
    extensions: list[object] = [
        ErrorPolicy,
        RejectUnknownFragments,
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,  # type: ignore[arg-type]
        execution_context_class=SharedEventExecutionContext,
        # Without introspection, "Did you mean …?" would still spell the schema out.
        config=StrawberryConfig(auto_camel_case=True, disable_field_suggestions=not introspection),
    )


def sdl() -> str:
    return build_schema().as_str()
