"""Operator routes of the sender: provider routes with their live state, and drain, disable and
enable without a restart (``sender.route_control``). Every action is audited."""

from __future__ import annotations

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from pydantic import BaseModel

from hexcast.core.cache import Keys
from hexcast.core.errors import NotFound
from hexcast.core.operator_log import Audited
from hexcast.core.web import PoolDep, RequireOperator, SettingsDep, TextPath
from sender.route_control import RouteAction, RouteControl, RouteState, act, history
from sender.routing import provider_specs

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin/providers", tags=["operators"], dependencies=[RequireOperator])


class RouteActionIn(Audited):
    action: RouteAction


class RouteActionPublic(BaseModel):
    action: str
    actor: str
    reason: str
    at: str


class RoutePublic(BaseModel):
    name: str
    kind: str
    lanes: list[str]
    weight: int
    state: RouteState
    in_flight: int
    actions: list[RouteActionPublic]


def _control(request: Request, settings: SettingsDep) -> RouteControl:
    client: aioredis.Redis = request.app.state.redis
    return RouteControl(client, Keys(settings.redis_prefix))


async def _route(request: Request, settings: SettingsDep, pool: PoolDep, name: str) -> RoutePublic:
    spec = next((s for s in provider_specs(settings) if s.name == name), None)
    if spec is None:
        raise NotFound(f"no provider route {name!r}")
    control = _control(request, settings)
    async with pool.acquire() as conn:
        actions = await history(conn, route=name, limit=5)
    return RoutePublic(
        name=name, kind=spec.kind, lanes=[lane.value for lane in spec.lanes], weight=spec.weight,
        state=(await control.states()).get(name, RouteState.ENABLED),
        in_flight=await control.in_flight(name),
        actions=[RouteActionPublic(action=a, actor=b, reason=c, at=d) for a, b, c, d in actions])


@router.get("", response_model=list[RoutePublic])
async def list_routes(request: Request, settings: SettingsDep, pool: PoolDep) -> list[RoutePublic]:
    """Every configured provider route with its live state, calls in flight and last actions."""
    return [await _route(request, settings, pool, s.name) for s in provider_specs(settings)]


@router.post("/{name}/actions", response_model=RoutePublic)
async def route_action(
    name: TextPath, body: RouteActionIn, request: Request, settings: SettingsDep, pool: PoolDep,
) -> RoutePublic:
    """Drain, disable or enable a route: every sender applies it within about a second; calls
    already made finish. Audited with the actor and the reason."""
    await _route(request, settings, pool, name)  # 404 for an unknown route
    async with pool.acquire() as conn:
        await act(_control(request, settings), conn, route=name, action=body.action,
                  actor=body.actor, reason=body.reason)
    return await _route(request, settings, pool, name)
