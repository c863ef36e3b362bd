"""Throwaway PostgreSQL databases: one per test session, module or benchmark run.

Each database gets a fresh random name on the server named by ``HEXCAST_TEST_PG`` (any
database URL of that server; default the local one), is migrated unless told otherwise,
and is dropped with ``FORCE`` afterwards, so a test that left connections open still
cleans up. ``server`` lets another tool (the benchmarks) point at its own server.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import asyncpg

from hexcast.core.db import apply_migrations

__all__ = [
    "SERVER_DSN",
    "create_database",
    "database_name",
    "drop_database",
    "dsn",
    "fetch_rows",
    "throwaway_database",
    "throwaway_database_sync",
]

SERVER_DSN = os.environ.get("HEXCAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
"""A database URL of the test server; its path names the database to connect to for
``CREATE DATABASE``."""
DEFAULT_PREFIX = "hexcast_test_"
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")


def database_name(prefix: str = DEFAULT_PREFIX) -> str:
    """A new database name: ``prefix`` and 12 random hex digits. The prefix must be a plain
    lower-case identifier, as the name is spliced into ``CREATE DATABASE``."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"database name prefix {prefix!r}: lower-case letters, digits and _ only")
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def dsn(name: str, *, server: str | None = None) -> str:
    """The URL of database ``name`` on the test server (or on ``server``)."""
    return (server or SERVER_DSN).rsplit("/", 1)[0] + f"/{name}"


async def create_database(
    *, migrate: bool = True, prefix: str = DEFAULT_PREFIX, server: str | None = None
) -> str:
    """A new empty database (migrated unless told otherwise); returns its name."""
    name = database_name(prefix)
    conn = await asyncpg.connect(server or SERVER_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    if migrate:
        conn = await asyncpg.connect(dsn(name, server=server))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
    return name


async def drop_database(name: str, *, server: str | None = None) -> None:
    """Drop database ``name``, closing whatever connections are still open on it."""
    conn = await asyncpg.connect(server or SERVER_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def fetch_rows(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """The rows of one statement on the database at ``url``, in a connection of its own (what
    a test reads back from the database its processes wrote)."""
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@asynccontextmanager
async def throwaway_database(
    prefix: str = DEFAULT_PREFIX, *, migrate: bool = True, server: str | None = None
) -> AsyncIterator[str]:
    """A new database for the ``async with`` block; yields its URL, drops it afterwards."""
    name = await create_database(migrate=migrate, prefix=prefix, server=server)
    try:
        yield dsn(name, server=server)
    finally:
        await drop_database(name, server=server)


@contextmanager
def throwaway_database_sync(
    prefix: str = DEFAULT_PREFIX, *, migrate: bool = True, server: str | None = None
) -> Iterator[str]:
    """:func:`throwaway_database` for code outside an event loop (sync fixtures, benchmarks):
    each step runs in its own ``asyncio.run``."""
    name = asyncio.run(create_database(migrate=migrate, prefix=prefix, server=server))
    try:
        yield dsn(name, server=server)
    finally:
        asyncio.run(drop_database(name, server=server))
