"""The GraphQL schema: roots, limits and error policy."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig

from schema.errors import ErrorPolicy
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription

MAX_DEPTH = 12
MAX_ALIASES = 50
MAX_TOKENS = 5000


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
    # Factories: Strawberry builds fresh extension instances per request.
    extensions: list[object] = [
        ErrorPolicy,
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(auto_camel_case=True),
    )


def sdl() -> str:
    return build_schema().as_str()
