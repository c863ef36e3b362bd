"""Throwaway local infrastructure for `hexcast up` and the tests.

Children (Redis, the embedded broker) run in their own session, so Ctrl-C reaches the
orchestrator first and shutdown is ordered; spawned from the main thread on Linux they get
SIGTERM when the parent dies. PostgreSQL runs via ``pg_ctl`` and outlives a crashed parent:
the next :meth:`ThrowawayPostgres.start` on the same state dir stops the leftover first.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions

from hexcast.core.errors import ConfigError
from hexcast.core.logging import get_logger
from hexcast.devstack.procs import ChildProcess, Service, free_port, port_in_use, run_sync, wait_tcp

__all__ = [
    "ThrowawayPostgres",
    "ThrowawayRedis",
    "ensure_database",
    "postgres_reachable",
    "redis_reachable",
]

_log = get_logger(__name__)
_T = TypeVar("_T")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PROBE_TIMEOUT_S = 2.0


async def postgres_reachable(dsn: str) -> bool:
    """True if a PostgreSQL server answers at the DSN's host and port.

    An answer that refuses us (unknown database, bad password) still counts: a server is
    there, so the caller should not start a second one.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=_PROBE_TIMEOUT_S)
    except asyncpg.PostgresError:
        return True
    except (OSError, TimeoutError, asyncpg.InterfaceError):
        return False
    await conn.close(timeout=_PROBE_TIMEOUT_S)
    return True


async def redis_reachable(url: str) -> bool:
    """True if a Redis server answers PING at the URL (an auth refusal also counts)."""
    client = aioredis.Redis.from_url(
        url, socket_connect_timeout=_PROBE_TIMEOUT_S, socket_timeout=_PROBE_TIMEOUT_S
    )
    try:
        await client.ping()
    except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError):
        return True
    except (redis.exceptions.RedisError, OSError):
        return False
    finally:
        await client.aclose()
    return True


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn)
    host = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    return f"{parts.scheme}://{parts.username or ''}@{host}{parts.path}"


async def ensure_database(dsn: str) -> None:
    """Create the DSN's database, connecting to the same server's ``postgres`` database."""
    name = unquote(urlsplit(dsn).path.lstrip("/"))
    if not name:
        raise ConfigError(f"database URL {_redact(dsn)} names no database")
    try:
        conn = await asyncpg.connect(dsn, database="postgres", timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise ConfigError(f"cannot connect to PostgreSQL at {_redact(dsn)}: {exc}") from exc
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except asyncpg.DuplicateDatabaseError:
            return
        _log.info("database_created", database=name, server=_redact(dsn))
    finally:
        await conn.close()


# ---------------------------------------------------------------------------- redis


class ThrowawayRedis(Service):
    """``redis-server`` without persistence, as a child process on a fixed port.

    ``start()`` / ``stop()`` may be repeated; the port is chosen once, so clients can
    reconnect to the same URL after a restart. The scratch dir (and the log, unless
    ``log_path`` is given) is removed on ``stop()``.
    """

    def __init__(
        self, port: int | None = None, *, log_path: Path | str | None = None,
        binary: str | None = None, startup_timeout: float = 10.0,
    ) -> None:
        self.port = port if port is not None else free_port()
        found = binary or shutil.which("redis-server")
        if found is None:
            raise ConfigError("redis-server not found on PATH (apt-get install redis-server)")
        self._dir = Path(tempfile.gettempdir()) / f"hexcast-redis-{os.getpid()}-{self.port}"
        path = Path(log_path) if log_path is not None else self._dir / "redis.log"
        argv = [found, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", str(self._dir)]
        self._child = ChildProcess("redis-server", argv, path)
        self._timeout = startup_timeout

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._child.alive

    def start(self) -> str:
        """Start the server (no-op if running) and return its URL once it accepts clients."""
        if self._child.alive:
            return self.url
        if port_in_use(self.port):
            raise ConfigError(f"cannot start redis-server: port {self.port} is already in use")
        started = time.monotonic()
        self._dir.mkdir(mode=0o700, exist_ok=True)
        self._child.spawn()
        try:
            wait_tcp(self._child, "127.0.0.1", self.port, self._timeout)
        except ConfigError:
            self.stop()
            raise
        _log.info("redis_started", url=self.url, seconds=round(time.monotonic() - started, 3))
        return self.url

    def stop(self) -> None:
        """SIGTERM (then SIGKILL after 5 s). Safe to call when not running."""
        self._child.terminate()
        shutil.rmtree(self._dir, ignore_errors=True)


# ---------------------------------------------------------------------------- postgres


def _pg_bin_dir() -> Path:
    """A directory holding initdb, pg_ctl and postgres: PATH first, then Debian's layout."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        candidates += [Path(on_path).resolve().parent, Path(on_path).parent]
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian, key=lambda p: [int(n) for n in re.findall(r"\d+", str(p))])[::-1]
    for cand in candidates:
        if all((cand / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return cand
    raise ConfigError(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or under "
        "/usr/lib/postgresql/*/bin; install postgresql or set HEXCAST_DATABASE_URL"
    )


class ThrowawayPostgres(Service):
    """A PostgreSQL server of our own, kept in ``<state_dir>/pg`` between runs.

    Trust auth, TCP on 127.0.0.1 only, unix socket inside the state dir. initdb refuses
    to run as root, so as root both initdb and the server run as the ``postgres`` user.
    """

    def __init__(
        self, state_dir: Path | str, *, port: int | None = None, database: str = "hexcast",
        startup_timeout: float = 60.0,
    ) -> None:
        self.root = Path(state_dir).resolve() / "pg"
        self.port = port if port is not None else free_port()
        self.database = database
        self._timeout = startup_timeout
        self._bin: Path | None = None
        self._sock_dir = self.root / "run"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def start(self) -> str:
        """Init the cluster if needed, start the server, create the database; return the DSN."""
        started = time.monotonic()
        self._bin = _pg_bin_dir()
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb()
        if self._server_running():
            _log.warning("postgres_leftover_stopped", data_dir=str(self.data_dir))
            self._pg_ctl("stop", "-m", "fast")
        if port_in_use(self.port):
            raise ConfigError(f"cannot start PostgreSQL: port {self.port} is already in use")
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={shlex.quote(str(self._sock_dir))}")
        self._pg_ctl("start", "-l", str(self.log_path), "-o", opts)
        try:
            run_sync(lambda: ensure_database(self.dsn))
        except ConfigError:
            self.stop()
            raise
        _log.info("postgres_started", dsn=self.dsn, seconds=round(time.monotonic() - started, 3))
        return self.dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown). Safe to call when it is not running."""
        self._halt("fast")

    def crash(self) -> None:
        """Stop the server as a crash would (``pg_ctl stop -m immediate``: no checkpoint,
        clients cut off mid-statement); :meth:`start` brings it back on the same data dir and
        port after crash recovery (the outage tests)."""
        self._halt("immediate")

    def _halt(self, mode: str) -> None:
        if self._bin is None or not self._server_running():
            return
        self._pg_ctl("stop", "-m", mode)
        _log.info("postgres_stopped", data_dir=str(self.data_dir), mode=mode)

    def _initdb(self) -> None:
        assert self._bin is not None
        _log.info("postgres_initdb", data_dir=str(self.data_dir))
        self._run([str(self._bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                   "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync",
                   "--no-instructions"], "initdb")

    def _pg_ctl(self, action: str, *args: str) -> None:
        assert self._bin is not None
        argv = [str(self._bin / "pg_ctl"), action, "-D", str(self.data_dir), "-w",
                "-t", str(int(self._timeout)), *args]
        self._run(argv, f"pg_ctl {action}")

    def _server_running(self) -> bool:
        assert self._bin is not None
        if not (self.data_dir / "PG_VERSION").is_file():
            return False
        argv = [str(self._bin / "pg_ctl"), "status", "-D", str(self.data_dir)]
        return self._run(argv, "pg_ctl status", check=False) == 0

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._hand_to_postgres()
        self._sock_dir = self.root / "run"
        if len(str(self._sock_dir / ".s.PGSQL.65535")) > 100:  # sun_path is ~107 bytes
            self._sock_dir = Path(tempfile.mkdtemp(prefix="hexcast-pg-"))
        self._sock_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            _chown_tree(self._sock_dir, *_postgres_user())

    def _hand_to_postgres(self) -> None:
        """As root: give the dir to the postgres user, or move to /tmp if it cannot reach it."""
        uid, gid = _postgres_user()
        _chown_tree(self.root, uid, gid)
        if self._run(["test", "-w", str(self.root)], "access check", check=False) == 0:
            return
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        fallback = Path(tempfile.gettempdir()) / f"hexcast-pg-{digest}"
        _log.warning("postgres_dir_moved", wanted=str(self.root), using=str(fallback),
                     reason="a parent directory is private to root")
        self.root = fallback
        self.root.mkdir(mode=0o700, exist_ok=True)
        _chown_tree(self.root, uid, gid)

    def _run(self, argv: list[str], what: str, *, check: bool = True) -> int:
        if os.geteuid() == 0:
            argv = _as_postgres(argv)
        try:
            done = subprocess.run(argv, cwd=self.root, capture_output=True,
                                  timeout=self._timeout + 10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"{what} failed: {exc}") from exc
        if check and done.returncode != 0:
            out = (done.stderr + done.stdout).decode(errors="replace").strip()[-3000:]
            raise ConfigError(f"{what} failed (exit {done.returncode}):\n{out}"
                              f"\nserver log: {self.log_path}")
        return done.returncode


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    for path in (top, *top.rglob("*")):
        if path.lstat().st_uid != uid:
            os.lchown(path, uid, gid)


def _postgres_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        raise ConfigError(
            "running as root, and initdb refuses to run as root; there is no 'postgres' "
            "system user to run it as. Run hexcast as a regular user, create the user "
            "(useradd --system postgres), or point HEXCAST_DATABASE_URL at a server"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _as_postgres(argv: list[str]) -> list[str]:
    """Wrap a command to run as the ``postgres`` user (runuser, else su)."""
    _postgres_user()
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", "postgres", "--", *argv]
    su = shutil.which("su")
    if su is not None:
        return [su, "postgres", "-s", "/bin/sh", "-c", shlex.join(argv)]
    raise ConfigError("running as root but neither runuser nor su is available")
