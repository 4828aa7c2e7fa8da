from __future__ import annotations

import asyncio
import base64
import os
import sys
from pathlib import Path

import asyncpg

from db import credentials
from db.scope import as_service
from db.vault import Vault
from tests.factories import make_integration, make_org

ROOT = Path(__file__).resolve().parent.parent
OLD = b"o" * 32
NEW = b"n" * 32


def keys(*pairs: tuple[str, bytes]) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in pairs)


async def test_ihm_vault_rotate_reseals_every_secret_with_the_first_key(
    dsn: str, pool: asyncpg.Pool
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        integration = await make_integration(conn, org, "slack", config={})
        await credentials.store(
            conn,
            Vault([("old", OLD)]),
            org_id=org,
            integration_id=integration.id,
            payload={"botToken": "xoxb-rotate-me"},
        )
    env = {**os.environ, "DATABASE_URL": dsn, "IHM_VAULT_KEYS": keys(("new", NEW), ("old", OLD))}

    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ihm",
        "vault",
        "rotate",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await run.communicate()

    assert run.returncode == 0, err.decode()
    assert out.decode().strip() == "re-encrypted 1 secret(s) with key 'new'"
    async with as_service(pool) as conn:
        secret = await credentials.load(
            conn, Vault([("new", NEW)]), org_id=org, integration_type="slack"
        )
    assert secret is not None and secret["botToken"] == "xoxb-rotate-me"


async def test_ihm_vault_rotate_names_a_missing_key_in_one_line(
    dsn: str, pool: asyncpg.Pool
) -> None:
    async with as_service(pool) as conn:
        org = await make_org(conn)
        integration = await make_integration(conn, org, "xledger", config={})
        await credentials.store(
            conn,
            Vault([("gone", OLD)]),
            org_id=org,
            integration_id=integration.id,
            payload={"apiToken": "t"},
        )
    env = {**os.environ, "DATABASE_URL": dsn, "IHM_VAULT_KEYS": keys(("new", NEW))}

    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ihm",
        "vault",
        "rotate",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await run.communicate()

    assert run.returncode == 1
    assert "'gone'" in err.decode()
    assert err.decode().count("\n") == 1
    assert "Traceback" not in err.decode()
