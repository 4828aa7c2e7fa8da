"""Real Postgres and Redis servers run as local child processes.

`ihm up` uses them as the embedded default (under `./.ihm/`), and the test
suite uses them as its fixtures, so both exercise the same code. Postgres
refuses to run as root, so when we are root the cluster belongs to an
unprivileged user (`postgres` when the server package made one, else `ihm`).
"""

from __future__ import annotations

import asyncio
import base64
import glob
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from pydantic import ValidationError

from settings import ConfigError, Settings, describe_validation_error

PG_SUPERUSER = "ihm"


class EmbeddedError(RuntimeError):
    """A local server could not be found, set up or started; the message says why."""


# -- Postgres ---------------------------------------------------------------


def find_postgres_bin() -> Path:
    """Directory holding initdb/pg_ctl/postgres: from PATH, else the newest packaged version."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    packaged = glob.glob("/usr/lib/postgresql/*/bin")
    packaged.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    candidates.extend(Path(p) for p in reversed(packaged))
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise EmbeddedError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
        "/usr/lib/postgresql/*/bin: install them, e.g. `apt-get install -y postgresql-15`"
    )


def unprivileged_user() -> pwd.struct_passwd | None:
    """The account Postgres runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "ihm"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "ihm"],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam("ihm")


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """A Postgres cluster in `data_dir`, listening on 127.0.0.1:`port` only."""

    data_dir: Path
    port: int
    # None: trust authentication (throw-away test clusters); else a password is
    # generated at initdb and kept beside the cluster, readable by us alone.
    password_file: Path | None = None
    settings: dict[str, str] = field(default_factory=dict)
    started_here: bool = False

    def __post_init__(self) -> None:
        self.bin_dir = find_postgres_bin()
        self.user = unprivileged_user()

    def dsn(self, database: str = "ihm") -> str:
        auth = PG_SUPERUSER
        if self.password_file is not None and self.password_file.exists():
            auth += ":" + quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def _run(self, args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        user = {"user": self.user.pw_uid, "group": self.user.pw_gid} if self.user else {}
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            # A session of its own: Ctrl-C in the terminal reaches `ihm up`,
            # which stops the API and worker before the database.
            args,
            capture_output=True,
            text=True,
            cwd="/",
            start_new_session=True,
            **user,
            **kwargs,
        )

    def _place_data_dir(self) -> None:
        """Make sure the cluster's user can reach the data directory.

        When the project lives where that user cannot enter (under /root, say),
        the cluster lives under /var/tmp and `data_dir` becomes a symlink to it.
        """
        if self.user is None or self.data_dir.exists():
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._run(["test", "-x", str(self.data_dir.parent)]).returncode == 0:
            return
        digest = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:12]
        # A fixed, per-project place that the cluster user can traverse.
        elsewhere = Path("/var/tmp") / f"ihm-{digest}" / self.data_dir.name  # noqa: S108
        elsewhere.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(elsewhere.parent, 0o755)  # noqa: S103 - the data dir inside is 0700
        self.data_dir.symlink_to(elsewhere, target_is_directory=True)

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        if self.initialized():
            return
        self._place_data_dir()
        target = self.data_dir.resolve()
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, 0o700)
        args = [str(self.bin_dir / "initdb"), "-D", str(target), "-U", PG_SUPERUSER]
        args += ["--encoding=UTF8", "--locale=C.UTF-8", "--auth-local=reject"]
        pwfile: Path | None = None
        if self.password_file is not None:
            self.password_file.write_text(secrets.token_urlsafe(24))
            os.chmod(self.password_file, 0o600)
            pwfile = target.parent / f".{target.name}.pw"
            shutil.copyfile(self.password_file, pwfile)
            args += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            args += ["--auth-host=trust"]
        if self.user:
            os.chown(target, self.user.pw_uid, self.user.pw_gid)
            if pwfile:
                os.chown(pwfile, self.user.pw_uid, self.user.pw_gid)
        try:
            done = self._run(args)
        finally:
            if pwfile:
                pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise EmbeddedError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args])

    def running(self) -> bool:
        return self._pg_ctl("status").returncode == 0

    def start(self) -> None:
        """Start the server unless it already runs (then it is left running at stop())."""
        self.init()
        if self.running():
            return
        if port_is_open(self.port):
            raise EmbeddedError(f"port {self.port} is taken by another program: free it first")
        options = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "max_connections": "200",
            **self.settings,
        }
        opts = " ".join(f"-c {k}={v!r}" if v == "" else f"-c {k}={v}" for k, v in options.items())
        log = self.data_dir.resolve() / "server.log"
        started = self._pg_ctl("-l", str(log), "-o", opts, "-w", "-t", "60", "start")
        if started.returncode != 0:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else started.stderr
            raise EmbeddedError(f"Postgres did not start on port {self.port}: {tail.strip()}")
        self.started_here = True

    def stop(self) -> None:
        if self.started_here:
            self._pg_ctl("-m", "fast", "-w", "stop")
            self.started_here = False

    def create_database(self, name: str) -> None:
        """CREATE DATABASE unless it exists."""
        createdb = self.bin_dir / "createdb"
        env = {**os.environ}
        if self.password_file is not None:
            env["PGPASSWORD"] = self.password_file.read_text().strip()
        done = self._run(
            [str(createdb), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_SUPERUSER, name],
            env=env,
        )
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise EmbeddedError(f"could not create database {name}: {done.stderr.strip()}")


# -- Redis ------------------------------------------------------------------


def redis_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1:`port`, data in `data_dir`."""

    data_dir: Path
    port: int
    persistent: bool = True
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise EmbeddedError(
                "redis-server not found on PATH: install it, e.g. `apt-get install -y redis-server`"
            )
        self.binary = binary

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 15.0) -> None:
        """Start redis-server unless a Redis already answers on the port (then reuse it)."""
        if self.process is not None and self.process.poll() is None:
            return
        if port_is_open(self.port):
            if redis_answers(self.port):
                return
            raise EmbeddedError(f"port {self.port} is taken by another program: free it first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.data_dir), "--daemonize", "no", "--save", ""]
        args += ["--appendonly", "yes" if self.persistent else "no", "--loglevel", "warning"]
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not port_is_open(self.port):
            if self.process.poll() is not None:
                raise EmbeddedError(f"redis-server exited at start; see {self.data_dir}/redis.log")
            if time.monotonic() > deadline:
                raise EmbeddedError(f"redis-server did not listen on {self.port} within {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# -- ihm up -----------------------------------------------------------------


PG_PORT = 54329
REDIS_PORT = 63799
SIMULATOR_PORT = 9100
STATE_DIR = ".ihm"
CHILD_STOP_SECONDS = 15
READY_TIMEOUT_SECONDS = 60


def _secrets(path: Path) -> dict[str, str]:
    """Generated once and kept, so tokens and stored credentials survive restarts."""
    if not path.exists():
        vault_key = base64.b64encode(secrets.token_bytes(32)).decode()
        path.write_text(
            f"IHM_JWT_SECRET={secrets.token_urlsafe(48)}\nIHM_VAULT_KEYS=local1:{vault_key}\n"
        )
        os.chmod(path, 0o600)
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


async def _migrate_and_seed(settings: Settings, simulator_url: str) -> list[str]:
    from db import demo
    from db.migrate import migrate
    from db.pool import connect
    from db.vault import Vault

    vault = Vault([(k.key_id, k.key) for k in settings.vault_keys])
    conn = await connect(settings.require_database(), application_name="ihm-up")
    try:
        applied = await migrate(conn)
        async with conn.transaction():
            await demo.seed(conn, vault, simulator_url=simulator_url)
    finally:
        await conn.close()
    return [m.version for m in applied]


def _wait_ready(url: str, children: dict[str, subprocess.Popen[bytes]]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in children.values()):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _settings_from(env: dict[str, str]) -> Settings:
    """The children's settings, checked here first so a bad value is one clear line."""
    aliases = {f.alias for f in Settings.model_fields.values()}
    try:
        settings = Settings.model_validate({k: v for k, v in env.items() if k in aliases and v})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    settings.require_runtime()
    return settings


def _banner(settings: Settings, base_url: str, simulator_url: str) -> str:
    from db.demo import DEMO_ORG_ID
    from resolvers.tokens import mint_token

    secret = settings.require_jwt_secret()
    lines = [
        f"Integration Health Monitor is up: {base_url}",
        f"  readiness  {base_url}/readyz    metrics  {base_url}/metrics",
        f"  demo org   {DEMO_ORG_ID}: six integrations against the simulator at {simulator_url}",
        "             (a scripted scenario changes their health every few seconds)",
        "  tokens (12 h; send as `Authorization: Bearer <token>`):",
    ]
    for role in ("member", "coordinator", "org_admin", "service", "global_admin"):
        admin = role == "global_admin"
        token = mint_token(
            secret,
            role=role,
            org_id=None if admin else DEMO_ORG_ID,
            sub=f"demo-{role}",
            ttl_seconds=12 * 3600,
            audience=settings.admin_audience if admin else settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
        lines.append(f"    {role:<13}{token}")
    lines.append("Ctrl-C stops everything `ihm up` started.")
    return "\n".join(lines)


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in children.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_SECONDS
    for process in children.values():
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_up(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    pg_port: int = PG_PORT,
    redis_port: int = REDIS_PORT,
    simulator_port: int = SIMULATOR_PORT,
) -> int:
    """Run the whole product locally until Ctrl-C or SIGTERM; return the exit code."""
    state = Path.cwd() / STATE_DIR
    state.mkdir(exist_ok=True)
    env = {**os.environ}
    for key, value in _secrets(state / "secrets.env").items():
        env.setdefault(key, value)
    env.setdefault("IHM_ENV", "development")

    stop = False

    def request_stop(signum: int, _: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    demo_thread: threading.Thread | None = None
    demo_stop = threading.Event()
    try:
        if "DATABASE_URL" not in env:
            postgres = EmbeddedPostgres(state / "pg", pg_port, password_file=state / "pg-password")
            postgres.start()
            postgres.create_database("ihm")
            env["DATABASE_URL"] = postgres.dsn("ihm")
        if "REDIS_URL" not in env:
            redis = EmbeddedRedis(state / "redis", redis_port)
            redis.start()
            env["REDIS_URL"] = redis.url()
        for what, taken in (("API", port), ("simulator", simulator_port)):
            if port_is_open(taken):
                raise EmbeddedError(
                    f"port {taken} for the {what} is taken: free it or pick another"
                )
        settings = _settings_from(env)
        base_url = f"http://{host}:{port}"
        simulator_url = f"http://127.0.0.1:{simulator_port}"
        asyncio.run(_migrate_and_seed(settings, simulator_url))

        command = [sys.executable, "-m", "ihm"]
        for name, args in {
            "simulator": [*command, "simulator", "--port", str(simulator_port)],
            "api": [*command, "api", "--host", host, "--port", str(port)],
            "worker": [*command, "worker"],
        }.items():
            children[name] = subprocess.Popen(args, env=env, start_new_session=True)
        if not _wait_ready(f"{base_url}/readyz", children) and not stop:
            raise EmbeddedError(f"the API did not become ready at {base_url}/readyz")
        if not _wait_ready(f"{simulator_url}/_control/healthz", children) and not stop:
            raise EmbeddedError(f"the simulator did not start at {simulator_url}")
        if not stop:
            from db.demo import DEMO_ORG_ID
            from workers import demo

            demo_thread, demo_stop = demo.start(simulator_url, env["REDIS_URL"], str(DEMO_ORG_ID))
            print(_banner(settings, base_url, simulator_url), flush=True)
        while not stop:
            for name, process in children.items():
                if process.poll() is not None:
                    raise EmbeddedError(f"the {name} exited with code {process.returncode}")
            time.sleep(0.2)
        return 0
    except EmbeddedError as exc:
        print(f"ihm up: {exc}", file=sys.stderr)
        return 1
    finally:
        if demo_thread is not None:
            demo_stop.set()
            demo_thread.join(10)
        _stop_children(children)
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
        print("ihm up: stopped", file=sys.stderr, flush=True)
