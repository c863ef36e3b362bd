"""PostgreSQL: the connection pool and the migration runner."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from hexcast.core.errors import ConfigError, HexcastError

__all__ = ["PG_OUTAGES", "Conn", "one", "Migration", "apply_migrations", "available_migrations",
           "connect_pool", "refresh_stats"]

PG_OUTAGES: tuple[type[Exception], ...] = (
    OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError, asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,
)
"""PostgreSQL is unreachable, shutting down (``pg_ctl stop -m fast`` ends each session's
statement with 57P01), recovering or out of connections (pool acquire timeouts are
``TimeoutError``, an ``OSError``): no item's fault, so a loop waits (or a request answers 503)
instead of dead-lettering. ``InternalClientError`` is asyncpg's pool losing track of a
connection the server cut ("connect() called while another connection already exists"): seen
during a PostgreSQL restart in a chaos run, where it dead-lettered a delivery receipt."""

#: A connection, whether direct or borrowed from a pool; every repo function takes one.
Conn = asyncpg.Connection | PoolConnectionProxy

_MIGRATION_LOCK = 7_401_119  # advisory lock id: one migrator at a time


def one(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row of a statement that always returns one (INSERT … RETURNING)."""
    if row is None:
        raise HexcastError("statement returned no row")
    return row


#: Tables whose statistics :func:`refresh_stats` may refresh (a name is never interpolated freely).
_ANALYZABLE = frozenset({"recipients", "messages", "webhook_outbox", "webhook_deliveries"})


async def refresh_stats(conn: Conn, *, table: str, stale_fraction: float = 0.1) -> bool:
    """``ANALYZE table`` when PostgreSQL has no statistics for it yet, or more than
    ``stale_fraction`` of its rows changed since the last analysis; True if it ran.

    After a bulk load (a COPY of millions of recipients, then a campaign at once) the planner
    knows nothing of the table until autovacuum gets to it (or never, where autovacuum is
    off): it then pages an audience by reading every remaining row and sorting it, seconds
    per 1,000-row page at 5M recipients. Called where an audience is about to be paged and
    after recipient imports. A sampled ANALYZE of 5M rows takes about a second.
    """
    if table not in _ANALYZABLE:
        raise ValueError(f"refresh_stats: {table!r} is not an analyzable table")
    row = await conn.fetchrow(
        "SELECT c.reltuples, s.n_mod_since_analyze FROM pg_class c"
        " JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = $1::regclass", table,
    )
    if row is None:
        return False
    never = row["reltuples"] < 0
    if not never and row["n_mod_since_analyze"] <= stale_fraction * max(row["reltuples"], 1000.0):
        return False
    await conn.execute(f"ANALYZE {table}")
    return True


async def _init_connection(conn: Conn) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool with JSON codecs; an unreachable server raises :class:`ConfigError`."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, init=_init_connection, timeout=10,
            reset=_keep_session,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"cannot connect to PostgreSQL at {_redact(dsn)}: {exc}") from exc
    if pool is None:  # pragma: no cover - asyncpg returns a pool or raises
        raise ConfigError("asyncpg returned no pool")
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset statement (``RESET ALL; UNLISTEN *; ...``), one more
    round trip per statement on the sender's hot path: pool connections hold no session state
    (no SET or LISTEN; the migration advisory lock is released by the migration itself), and
    asyncpg still rolls back a transaction left open before calling this."""
    del conn


def _redact(dsn: str) -> str:
    head, sep, tail = dsn.rpartition("@")
    if not sep:
        return dsn
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':')[0]}@{tail}"


class Migration:
    """One numbered SQL file from ``hexcast/core/migrations``."""

    def __init__(self, version: int, name: str, sql: str) -> None:
        self.version = version
        self.name = name
        self.sql = sql


def available_migrations() -> list[Migration]:
    """The packaged migrations in version order."""
    found: list[Migration] = []
    for entry in resources.files("hexcast.core.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


async def apply_migrations(conn: Conn) -> list[str]:
    """Apply what is not applied yet, each file in its own transaction. Returns applied names."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done: set[Any] = {
            r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
        }
        for migration in available_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
