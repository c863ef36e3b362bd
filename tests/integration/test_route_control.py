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
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from hexcast.core.cache import Keys, connect_redis
from hexcast.core.settings import Settings
from hexcast.testing import eventually
from sender.models import Lane
from sender.route_control import RouteAction, RouteControl, RouteState, act, history
from sender.routing import Router
from tests.integration.senderkit import ledger, providers_json, sender_world
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
    env = {**os.environ, **settings.to_env(), "HEXCAST_SENDER_PROVIDERS": json.dumps(ROUTES)}
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
    done = await asyncio.to_thread(_cli, settings, "drain", "rc-a", "--reason", "carrier outage",
                                   "--yes")
    waited = time.monotonic() - started
    await running
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "rc-a: draining"
    assert waited >= 1.5  # it returned only once the call had ended
    assert (await ctl.states())["rc-a"] is RouteState.DRAINING
    refused = await asyncio.to_thread(_cli, settings, "disable", "nope", "--reason", "x")
    assert refused.returncode == 2
    assert "no provider route 'nope'" in refused.stderr


def test_draining_a_route_mid_campaign_moves_new_chunks_within_two_seconds(
    broker_url: str, tmp_path: Path,
) -> None:
    """The real sender: A (the primary) is drained while a run is sending; A's ledger stops
    growing within 2 s of the drain returning, B takes the rest, every recipient once."""
    with sender_world(broker_url, tmp_path) as world:
        sim_a = world.sim("sim-a", sim_rate_per_s=400.0)
        sim_b = world.sim("sim-b", sim_rate_per_s=400.0)
        world.settings = world.settings.model_copy(update={"sender_providers": providers_json(
            {"name": "a", "url": sim_a, "token": "sim-token", "weight": 1000, "rate_per_s": 600.0},
            {"name": "b", "url": sim_b, "token": "sim-token", "weight": 1, "rate_per_s": 600.0})})
        world.sender("sender-bulk")
        world.publish(6000, run_id=31)
        eventually(lambda: len(ledger(sim_a)) >= 1500 or None, timeout=60)
        world.cli("providers", "drain", "a", "--reason", "carrier incident", "--yes")
        time.sleep(2.0)
        settled_a = len(ledger(sim_a))
        assert eventually(lambda: world.states().get("accepted") == 6000 or None, timeout=120)
        a_refs = Counter(i["client_ref"] for i in ledger(sim_a))
        b_refs = Counter(i["client_ref"] for i in ledger(sim_b))
        assert len(a_refs) == settled_a  # nothing new to A once the drain had taken hold
        assert b_refs
        assert not set(a_refs) & set(b_refs)
        assert set(a_refs.values()) | set(b_refs.values()) == {1}
        assert len(a_refs) + len(b_refs) == 6000
