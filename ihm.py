"""`ihm`: the command line of the Integration Health Monitor (see DESIGN.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from uuid import UUID

import structlog

from settings import ConfigError, Settings, exit_on_config_error, load_settings


def configure_logging(settings: Settings) -> None:
    """JSON lines in production, readable lines in development; stdlib logs included."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if settings.env == "production"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")


def cmd_migrate(_: argparse.Namespace) -> int:
    from db.migrate import MigrationError, migrate
    from db.pool import connect

    dsn = load_settings().require_database()

    async def run() -> list[str]:
        conn = await connect(dsn, application_name="ihm-migrate")
        try:
            return [f"{m.version}_{m.name}" for m in await migrate(conn)]
        finally:
            await conn.close()

    try:
        applied = asyncio.run(run())
    except MigrationError as exc:
        print(f"ihm migrate: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ihm migrate: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)}: {', '.join(applied)}" if applied else "database is up to date")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from schema.app import create_app, tune_gc

    settings = load_settings()
    settings.require_runtime()
    configure_logging(settings)
    app = create_app(settings)
    tune_gc()
    # Status events are small JSON: per-message compression costs more CPU than it saves.
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, ws_per_message_deflate=False)
    return 0


def cmd_worker(_: argparse.Namespace) -> int:
    from workers.main import run

    settings = load_settings()
    settings.require_runtime()
    configure_logging(settings)
    run(settings)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from resolvers.tokens import mint_token

    settings = load_settings()
    audience = settings.admin_audience if args.role == "global_admin" else settings.jwt_audience
    try:
        token = mint_token(
            settings.require_jwt_secret(),
            role=args.role,
            org_id=args.org,
            sub=args.sub or f"local-{args.role}",
            ttl_seconds=args.ttl,
            audience=audience,
            issuer=settings.jwt_issuer,
        )
    except ValueError as exc:
        print(f"ihm token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_schema(_: argparse.Namespace) -> int:
    from schema.root import sdl

    print(sdl())
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from embedded import run_up

    return run_up(
        host=args.host,
        port=args.port,
        pg_port=args.pg_port,
        redis_port=args.redis_port,
        simulator_port=args.simulator_port,
    )


def cmd_simulator(args: argparse.Namespace) -> int:
    from workers.simulator import run

    print(f"provider simulator on http://{args.host}:{args.port} (control: /_control/<key>)")
    run(host=args.host, port=args.port)
    return 0


def cmd_vault_rotate(_: argparse.Namespace) -> int:
    from db import credentials
    from db.pool import connect
    from db.vault import Vault, VaultError

    settings = load_settings()
    vault = Vault([(k.key_id, k.key) for k in settings.vault_keys])
    dsn = settings.require_database()

    async def run() -> int:
        conn = await connect(dsn, application_name="ihm-vault")
        try:
            return await credentials.rotate(conn, vault)
        finally:
            await conn.close()

    try:
        count = asyncio.run(run())
    except VaultError as exc:
        print(f"ihm vault rotate: {exc}", file=sys.stderr)
        return 1
    print(f"re-encrypted {count} secret(s) with key {vault.current_key_id!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from db.scope import ROLES
    from embedded import PG_PORT, REDIS_PORT, SIMULATOR_PORT

    parser = argparse.ArgumentParser(prog="ihm", description="Integration Health Monitor")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run everything locally: Postgres, Redis, API, worker")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--pg-port", type=int, default=PG_PORT, help="embedded Postgres port")
    up.add_argument("--redis-port", type=int, default=REDIS_PORT, help="embedded Redis port")
    up.add_argument("--simulator-port", type=int, default=SIMULATOR_PORT)
    up.set_defaults(func=cmd_up)

    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)

    api = sub.add_parser("api", help="serve HTTP and WebSocket")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(func=cmd_api)

    sub.add_parser("worker", help="run an arq worker with the cron jobs").set_defaults(
        func=cmd_worker
    )

    sub.add_parser("schema", help="print the GraphQL SDL").set_defaults(func=cmd_schema)

    simulator = sub.add_parser("simulator", help="run the provider simulator alone")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=SIMULATOR_PORT)
    simulator.set_defaults(func=cmd_simulator)

    vault = sub.add_parser("vault", help="credential vault maintenance")
    vault_sub = vault.add_subparsers(dest="vault_command", required=True, metavar="ACTION")
    vault_sub.add_parser(
        "rotate", help="re-encrypt every stored secret with the first key of IHM_VAULT_KEYS"
    ).set_defaults(func=cmd_vault_rotate)

    token = sub.add_parser("token", help="print a signed token for local use")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--org", type=UUID, default=None, help="org id (UUID)")
    token.add_argument("--sub", default=None, help="subject: user or service id")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        exit_on_config_error(exc)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
