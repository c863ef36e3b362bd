"""Throwaway PostgreSQL databases for tests (integration and notebook tests share these)."""

from __future__ import annotations

import os
import uuid

import asyncpg

from hexcast.core.db import apply_migrations

__all__ = ["SERVER_DSN", "create_database", "drop_database", "dsn"]

SERVER_DSN = os.environ.get("HEXCAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def dsn(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    return SERVER_DSN.rsplit("/", 1)[0] + f"/{name}"


async def create_database(*, migrate: bool = True) -> str:
    """A new empty database (migrated unless told otherwise); returns its name."""
    name = f"hexcast_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    if migrate:
        conn = await asyncpg.connect(dsn(name))
        try:
            await apply_migrations(conn)
        finally:
            await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(SERVER_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
