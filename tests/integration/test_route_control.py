"""Live route control against real Redis and PostgreSQL: a drained route leaves new grants
within the refresh period, ``hexcast providers drain`` waits for calls in flight, and every
action is in the audit trail."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from hexcast.core.cache import Keys, connect_redis
from hexcast.core.settings import Settings
from sender.models import Lane
from sender.route_control import RouteAction, RouteControl, RouteState, act, history
from sender.routing import Router
from tests.unit.senderfakes import FakeProvider, route

ROUTES = [{"name": "rc-a", "url": "http://127.0.0.1:9", "token": "t"},
          {"name": "rc-b", "url": "http://127.0.0.1:9", "token": "t"}]


@pytest.fixture
async def control(settings: Settings) -> AsyncIterator[tuple[RouteControl, aioredis.Redis]]:
    client = connect_redis(settings.redis_url)
    try:
        yield RouteControl(client, Keys(settings.redis_prefix), call_ttl_s=30), client
    finally:
        await client.aclose()


def _router(control: RouteControl) -> Router:
    routes = [route(FakeProvider(n)) for n in ("rc-a", "rc-b")]
    return Router(routes, seed=1, control=control, refresh_s=0.2)


async def test_a_drained_route_leaves_new_grants_within_the_refresh(
    control: tuple[RouteControl, aioredis.Redis], database_url: str,
) -> None:
    ctl, _ = control
    router = _router(ctl)
    await router.refresh()
    assert {r.spec.name for r in router.for_lane(Lane.BULK)} == {"rc-a", "rc-b"}
    conn = await asyncpg.connect(database_url)
    try:
        await act(ctl, conn, route="rc-a", action=RouteAction.DRAIN, actor="alice", reason="maint")
        await asyncio.sleep(0.25)
        await router.refresh()
        assert [r.spec.name for r in router.for_lane(Lane.BULK)] == ["rc-b"]
        assert router.serves(Lane.BULK)  # still configured: rows wait, they do not fail
        await act(ctl, conn, route="rc-a", action=RouteAction.ENABLE, actor="bob", reason="back")
        await asyncio.sleep(0.25)
        await router.refresh()
        assert {r.spec.name for r in router.for_lane(Lane.BULK)} == {"rc-a", "rc-b"}
        trail = await history(conn, route="rc-a")
        assert [(a, who, why) for a, who, why, _ in trail][:2] == [
            ("enable", "bob", "back"), ("drain", "alice", "maint")]
    finally:
        await conn.execute("DELETE FROM route_actions WHERE route LIKE 'rc-%'")
        await conn.close()


async def test_calls_in_flight_are_counted_until_they_end(
    control: tuple[RouteControl, aioredis.Redis],
) -> None:
    ctl, _ = control
    async with ctl.call("rc-a"), ctl.call("rc-a"):
        assert await ctl.in_flight("rc-a") == 2
    assert await ctl.in_flight("rc-a") == 0


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings.to_env(), "HEXCAST_SENDER_PROVIDERS": json.dumps(ROUTES),
           "HEXCAST_ACTOR": "carol"}
    return subprocess.run([sys.executable, "-m", "hexcast", "providers", *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


async def test_the_drain_command_waits_for_calls_in_flight(
    control: tuple[RouteControl, aioredis.Redis], settings: Settings,
) -> None:
    ctl, _ = control

    async def call_for(seconds: float) -> None:
        async with ctl.call("rc-a"):
            await asyncio.sleep(seconds)

    running = asyncio.create_task(call_for(2.0))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    done = await asyncio.to_thread(_cli, settings, "drain", "rc-a", "--reason", "carrier outage")
    waited = time.monotonic() - started
    await running
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rc-a: draining"
    assert waited >= 1.5  # it returned only once the call had ended
    assert (await ctl.states())["rc-a"] is RouteState.DRAINING
    refused = await asyncio.to_thread(_cli, settings, "disable", "nope", "--reason", "x")
    assert refused.returncode == 2
    assert "no provider route 'nope'" in refused.stderr
