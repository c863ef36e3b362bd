"""FastAPI dependencies shared by the domain routers: pool, bus, settings, tenant, operator."""

from __future__ import annotations

import hmac
from typing import Annotated

import asyncpg
from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from hexcast.core.bus import Bus
from hexcast.core.errors import Unauthorized
from hexcast.core.ids import BIGINT_MAX
from hexcast.core.pgtext import PG_TEXT
from hexcast.core.settings import Settings
from hexcast.core.tenants import Tenant, authenticate

__all__ = ["AfterId", "BusDep", "IdPath", "Limit", "PoolDep", "SettingsDep", "TenantDep", "TextPath",
           "RequireOperator"]

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Tenant API key")
operator_bearer = HTTPBearer(
    auto_error=False, scheme_name="OperatorToken",
    description="Operator token (HEXCAST_OPERATOR_TOKEN), for routes that show every tenant's data",
)


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def _bus(request: Request) -> Bus:
    bus: Bus = request.app.state.bus
    return bus


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


IdPath = Annotated[int, Path(ge=1, le=BIGINT_MAX)]  # a larger id is a 422, not a driver error
AfterId = Annotated[int, Query(ge=0, le=BIGINT_MAX, description="Keyset: ids after this one")]
Limit = Annotated[int, Query(ge=1, le=1000)]
TextPath = Annotated[str, Path(min_length=1, max_length=256), PG_TEXT]  # NUL or a lone surrogate: a 422

PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
BusDep = Annotated[Bus, Depends(_bus)]
SettingsDep = Annotated[Settings, Depends(_settings)]


async def _tenant(pool: PoolDep, key: Annotated[str | None, Security(api_key_header)]) -> Tenant:
    if not key:
        raise Unauthorized("missing X-API-Key header")
    async with pool.acquire() as conn:
        return await authenticate(conn, key=key)


TenantDep = Annotated[Tenant, Depends(_tenant)]


async def _operator(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(operator_bearer)],
) -> None:
    expected = settings.operator_token
    if expected is None:
        raise Unauthorized("operator routes are closed: set HEXCAST_OPERATOR_TOKEN on the api and send"
                           " it as Authorization: Bearer <token>", scheme="Bearer")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("missing or wrong operator token (Authorization: Bearer"
                           " <HEXCAST_OPERATOR_TOKEN>)", scheme="Bearer")


RequireOperator = Depends(_operator)
"""``dependencies=[RequireOperator]``: the route answers only with the operator token."""
