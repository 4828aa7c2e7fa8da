"""Forward-only SQL migrations: `db/migrations/NNNN_name.sql`, applied in order.

Each file runs in its own transaction and is recorded with its checksum in
`schema_migrations`. A session-level advisory lock serialises concurrent
runs: the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
ADVISORY_LOCK_KEY = 7_368_301_101  # arbitrary, constant: "ihm migrate"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        version, name = match.groups()
        if version in found:
            raise MigrationError(f"two migrations share version {version}")
        found[version] = Migration(version, name, path.read_text())
    return [found[v] for v in sorted(found)]


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_APPLIED = "SELECT version, checksum FROM schema_migrations"
_RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


async def migrate(
    conn: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Apply what is pending; return what was applied (empty when up to date)."""
    migrations = discover() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_LEDGER)
        applied = {r["version"]: r["checksum"] for r in await conn.fetch(_APPLIED)}
        known = {m.version for m in migrations}
        for m in migrations:
            if m.version in applied and applied[m.version] != m.checksum:
                raise MigrationError(
                    f"migration {m.version}_{m.name} was changed after it was applied; "
                    "write a new migration instead"
                )
        unknown = sorted(set(applied) - known)
        if unknown:
            raise MigrationError(
                f"the database has migrations this code does not know ({', '.join(unknown)}): "
                "it is newer than this release"
            )
        done: list[Migration] = []
        for m in migrations:
            if m.version in applied:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(_RECORD, m.version, m.name, m.checksum)
            done.append(m)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
