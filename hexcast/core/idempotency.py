"""Idempotency-Key for POSTs that create things: same key and body → the same response;
the same key with another body → 409. Keys are per tenant."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated

import asyncpg
from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from hexcast.core.errors import ConflictError

__all__ = ["IdempotencyKey", "idempotent", "request_hash"]

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200,
           description="Repeat a create safely: same key and body return the first response"),
]


def request_hash(path: str, body: BaseModel | None) -> bytes:
    raw = path + "\x1f" + (body.model_dump_json() if body is not None else "")
    return hashlib.sha256(raw.encode()).digest()


async def idempotent(
    pool: asyncpg.Pool, *, tenant_id: int, key: str | None, digest: bytes, status: int,
    create: Callable[[], Awaitable[BaseModel]],
) -> JSONResponse:
    """Run ``create`` once per (tenant, key); replay its stored response afterwards."""
    if key is None:
        return JSONResponse(jsonable_encoder(await create()), status_code=status)
    async with pool.acquire() as conn:
        claimed = await conn.fetchval(
            "INSERT INTO idempotency_keys (tenant_id, key, request_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true",
            tenant_id, key, digest,
        )
        if not claimed:
            row = await conn.fetchrow(
                "SELECT request_hash, status, response FROM idempotency_keys"
                " WHERE tenant_id = $1 AND key = $2", tenant_id, key,
            )
            if row is None or bytes(row["request_hash"]) != digest:
                raise ConflictError("Idempotency-Key was used with a different request")
            if row["status"] is None:
                raise ConflictError("a request with this Idempotency-Key is still in progress")
            return JSONResponse(row["response"], status_code=row["status"])
    try:
        body = jsonable_encoder(await create())
    except BaseException:
        async with pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2", tenant_id, key)
        raise
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET status = $3, response = $4::text::jsonb"
            " WHERE tenant_id = $1 AND key = $2", tenant_id, key, status, json.dumps(body),
        )
    return JSONResponse(body, status_code=status)
