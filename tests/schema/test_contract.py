"""The server's schema contains the whole public contract, unchanged.

`contract.graphql` is a copy of ../shared/api/schema.graphql (checked equal
below when the shared folder is present, so the copy cannot drift).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    ast_from_value,
    build_schema,
    print_ast,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = Path(__file__).with_name("contract.graphql")
SHARED = ROOT.parent / "shared" / "api" / "schema.graphql"


def _default(thing: object) -> str | None:
    """An argument's or input field's default, printed as GraphQL (None: no default).

    Schemas built from SDL keep the default as a literal (`.default`, graphql-core 3.3);
    Strawberry's keep the Python value (`.default_value`).
    """
    from graphql import Undefined

    declared = getattr(thing, "default", None)
    if declared is not None and getattr(declared, "literal", None) is not None:
        return print_ast(declared.literal)
    value = getattr(thing, "default_value", Undefined)
    if declared is not None and value is Undefined:
        value = getattr(declared, "value", Undefined)
    if value is Undefined:
        return None
    node = ast_from_value(value, thing.type)  # type: ignore[attr-defined]
    return print_ast(node) if node else "null"


def differences(contract: GraphQLSchema, server: GraphQLSchema) -> list[str]:
    found: list[str] = []
    for name, wanted in contract.type_map.items():
        if name.startswith("__"):
            continue
        have: GraphQLNamedType | None = server.type_map.get(name)
        if have is None:
            found.append(f"type {name} is missing")
            continue
        if type(have) is not type(wanted):
            found.append(f"type {name} is a {type(have).__name__}, not {type(wanted).__name__}")
            continue
        if isinstance(wanted, GraphQLEnumType):
            missing = set(wanted.values) - set(have.values)  # type: ignore[attr-defined]
            found += [f"enum value {name}.{v} is missing" for v in sorted(missing)]
        if isinstance(wanted, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in wanted.fields.items():
                got = have.fields.get(field_name)  # type: ignore[attr-defined]
                if got is None:
                    found.append(f"field {name}.{field_name} is missing")
                    continue
                if str(got.type) != str(field.type):
                    found.append(f"{name}.{field_name}: {got.type} instead of {field.type}")
                for arg_name, arg in field.args.items():
                    got_arg = got.args.get(arg_name)
                    where = f"{name}.{field_name}({arg_name})"
                    if got_arg is None:
                        found.append(f"argument {where} is missing")
                        continue
                    if str(got_arg.type) != str(arg.type):
                        found.append(f"{where}: {got_arg.type} instead of {arg.type}")
                    if _default(got_arg) != _default(arg):
                        found.append(f"{where}: default differs")
                for extra_name, extra in got.args.items():
                    if (
                        extra_name not in field.args
                        and "!" in str(extra.type)
                        and (_default(extra.default_value, extra.type) is None)
                    ):
                        found.append(f"{name}.{field_name}: added required argument {extra_name}")
        if isinstance(wanted, GraphQLInputObjectType):
            for field_name, field in wanted.fields.items():
                got = have.fields.get(field_name)  # type: ignore[attr-defined]
                where = f"{name}.{field_name}"
                if got is None:
                    found.append(f"input field {where} is missing")
                    continue
                if str(got.type) != str(field.type):
                    found.append(f"{where}: {got.type} instead of {field.type}")
                if _default(got) != _default(field):
                    found.append(f"{where}: default differs")
    for root in ("query_type", "mutation_type", "subscription_type"):
        if getattr(contract, root) and getattr(server, root) is None:
            found.append(f"{root} is missing")
    return found


def server_sdl() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ihm", "schema"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("IHM_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_ihm_schema_prints_a_schema_holding_the_whole_contract() -> None:
    contract = build_schema(CONTRACT.read_text())
    server = build_schema(server_sdl())

    assert differences(contract, server) == []


def test_the_contract_test_notices_drift() -> None:
    contract = build_schema(CONTRACT.read_text())
    drifted = build_schema(
        CONTRACT.read_text()
        .replace(
            "latencyMs: Int\n  checkedAt: DateTime\n  lastSuccessAt",
            "latencyMs: Int!\n  checkedAt: DateTime\n  lastSuccessAt",
        )
        .replace("history(limit: Int! = 96)", "history(limit: Int! = 10)")
        .replace(
            "enum TrendWindow { LAST_24_HOURS LAST_7_DAYS LAST_30_DAYS }",
            "enum TrendWindow { LAST_24_HOURS LAST_7_DAYS }",
        )
    )

    found = differences(contract, drifted)

    assert "IntegrationHealth.latencyMs: Int! instead of Int" in found
    assert "IntegrationHealth.history(limit): default differs" in found
    assert "enum value TrendWindow.LAST_30_DAYS is missing" in found


@pytest.mark.skipif(not SHARED.exists(), reason="the shared design folder is not beside the repo")
def test_the_bundled_contract_is_the_shared_one() -> None:
    assert CONTRACT.read_text() == SHARED.read_text()
