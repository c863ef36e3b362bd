"""Campaign capacity from the configured routes, in segments: the preview's figures through the
api from a routes file this test writes (two routes of different MPS and lanes, one of them
for one tenant only, and an otp route), and a two-segment run whose rate, counted per window
from the provider simulator's ledger timestamps, is the forecast's.

Hand-computed: the default shares keep 20 % of every route for otp and transactional and let
bulk take 70 %. The small tenant has "main" only: 40 x 0.7 = 28 segments/s, 14 two-segment
messages/s. The big one also has "partner": 28 + 100 x 0.7 = 98 segments/s, 49 messages/s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from hexcast.core.cache import Keys, connect_redis
from hexcast.core.kafka import delete_topics
from hexcast.core.topics import create_topics, topic_specs
from hexcast.testing import CAMPAIGN_PROCESSES, Stack, TenantRef, eventually, make_settings, make_tenant
from sender import PACE_WINDOW_S, RouteControl, segment_info
from sender.route_control import RouteState

pytestmark = pytest.mark.e2e

PROCESSES = CAMPAIGN_PROCESSES


def _routes(sim: str, secret: Path, big: int) -> str:
    """main: every lane and tenant, 40 segments/s; partner: geo and bulk of the big tenant
    only, 100; otp: otp and transactional only, 500."""
    def route(name: str, mps: int, extra: str = "") -> str:
        return (f'[[route]]\nname = "{name}"\nkind = "generic"\nurl = "{sim}"\n'
                f'token = {{ file = "{secret}" }}\nmps = {mps}\n{extra}\n')

    return (route("main", 40) + route("partner", 100, f'lanes = ["geo", "bulk"]\ntenants = [{big}]\n')
            + route("otp", 500, 'lanes = ["otp", "transactional"]\n'))


BODY = ("Black Friday at the Corner Store: 30% off every coat, boot and scarf, in store and online,"
        " until midnight tonight. Bring a friend and you both get a hot chocolate on us at the"
        " counter. Reply STOP to opt out.")
AUDIENCE = 300
WINDOW_S = 5.0
TOLERANCE = 0.05
"""What DESIGN.md claims: after its first second (the buckets' burst is one second of the
rate), a run sends at its rate_per_s within 5 % over its span, and within one pacing window
(1 s of the rate: a paced run sends a window a provider call) over any 5 s."""
SMALL, BIG = "+4477021", "+4477022"


@dataclass
class World:
    stack: Stack
    small: TenantRef
    big: TenantRef


async def _audience(dsn: str, tenant_id: int, prefix: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "recipients", columns=["tenant_id", "user_id", "phone", "time_zone", "consent_at"],
            records=[(tenant_id, f"u{i}", f"{prefix}{i:07d}", "America/Chicago",
                      datetime(2026, 1, 1, tzinfo=UTC)) for i in range(AUDIENCE)])
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def world(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    small = asyncio.run(make_tenant(database_url, prefix="cap-small"))
    big = asyncio.run(make_tenant(database_url, prefix="cap-big"))
    for tenant, prefix in ((small, SMALL), (big, BIG)):
        asyncio.run(_audience(database_url, tenant.id, prefix))
    here = tmp_path_factory.mktemp("capacity")
    routes, secret = here / "routes.toml", here / "sim-token"
    secret.write_text("sim-token\n")
    settings = make_settings(broker_url, database_url, providers_file=str(routes),
                             sim_rate_per_s=100_000.0, scheduler_poll_s=0.5)
    asyncio.run(create_topics(settings))
    stack = Stack(settings, here, PROCESSES)
    routes.write_text(_routes(stack.sim_url, secret, big.id))
    stack.start()
    try:
        yield World(stack, small, big)
    finally:
        stack.stop()
        asyncio.run(delete_topics(settings.bootstrap_servers, topic_specs(settings)))


def _api(world: World, tenant: TenantRef) -> httpx.Client:
    return httpx.Client(base_url=world.stack.api_url, headers={"X-API-Key": tenant.api_key}, timeout=30)


def _campaign(api: httpx.Client, **extra: Any) -> int:
    made = api.post("/v1/campaigns", json={
        "name": "Black Friday", "body": BODY, "segment": {"everyone": True},
        "run_at": "2030-11-27T09:00:00", "time_zone": "America/Chicago", **extra})
    assert made.status_code == 201, made.text
    campaign_id: int = made.json()["id"]
    return campaign_id


def _preview(world: World, tenant: TenantRef) -> dict[str, Any]:
    """A campaign due 5 s after its start: 300 two-segment messages, 600 segments."""
    with _api(world, tenant) as api:
        campaign_id = _campaign(api, deadline="2030-11-27T09:00:05")
        preview: dict[str, Any] = api.post(f"/v1/campaigns/{campaign_id}/preview").json()
    assert (preview["sendable"], preview["segments_per_message"], preview["cost_units"]) == (300, 2, 600)
    assert preview["meets_deadline"] is False
    assert preview["required_rate_per_s"] == pytest.approx(60.0)  # 300 in 5 s
    assert preview["fix"]["required_segments_per_s"] == pytest.approx(120.0)
    assert preview["fix"]["max_rate_at_least"] is None
    return preview


def test_the_preview_counts_the_routes_serving_the_lane_and_the_tenant(world: World) -> None:
    assert segment_info(BODY).segments == 2
    small = _preview(world, world.small)
    assert (small["capacity_segments_per_s"], small["capacity_per_s"]) == pytest.approx((28.0, 14.0))
    assert small["rate_per_s"] == pytest.approx(14.0)
    assert small["routes"] == [{"name": "main", "segments_per_s": pytest.approx(28.0),
                                "planned_segments_per_s": pytest.approx(28.0), "planned_segments": 600}]
    # 300 at 14/s take 21.43 s: 16.43 s late; 17 whole seconds earlier meets; 70 fit in 5 s
    assert small["late_by_s"] == pytest.approx(300 / 14 - 5, abs=1e-5)
    assert small["fix"]["add_segments_per_s"] == pytest.approx(120.0 - 28.0)
    assert (small["fix"]["start_earlier_s"], small["fix"]["lower_audience_by"]) == (17, 300 - 70)

    big = _preview(world, world.big)
    assert (big["capacity_segments_per_s"], big["capacity_per_s"]) == pytest.approx((98.0, 49.0))
    assert {r["name"]: (r["segments_per_s"], r["planned_segments"]) for r in big["routes"]} == {
        "main": (pytest.approx(28.0), 171), "partner": (pytest.approx(70.0), 429)}  # 600 x 28/98
    # 300 at 49/s take 6.12 s: 1.12 s late; 2 whole seconds earlier; 245 fit in 5 s
    assert big["fix"]["add_segments_per_s"] == pytest.approx(120.0 - 98.0)
    assert (big["fix"]["start_earlier_s"], big["fix"]["lower_audience_by"]) == (2, 300 - 245)
    assert any(s.startswith("add 22.00 segments/s of bulk capacity") for s in big["fix"]["suggestions"])


def test_a_drained_route_gives_the_preview_nothing_until_it_is_enabled(world: World) -> None:
    """The big tenant's partner route drained (its state in Redis, as `hexcast providers
    drain` sets it): the preview has main's 28 segments/s only; enabled again, 98."""
    def routes(state: RouteState) -> dict[str, float]:
        asyncio.run(_set_route(world.stack, "partner", state))
        with _api(world, world.big) as api:
            campaign_id = _campaign(api)
            preview = api.post(f"/v1/campaigns/{campaign_id}/preview").json()
        return {r["name"]: r["segments_per_s"] for r in preview["routes"]}

    assert routes(RouteState.DRAINING) == {"main": pytest.approx(28.0)}
    assert routes(RouteState.DISABLED) == {"main": pytest.approx(28.0)}
    assert routes(RouteState.ENABLED) == {"main": pytest.approx(28.0), "partner": pytest.approx(70.0)}


async def _set_route(stack: Stack, name: str, state: RouteState) -> None:
    client = connect_redis(stack.settings.redis_url)
    try:
        await RouteControl(client, Keys(stack.settings.redis_prefix)).set(name, state)
    finally:
        await client.aclose()


def _accepted_at(world: World, prefix: str) -> list[datetime]:
    items = httpx.get(f"{world.stack.sim_url}/ledger", params={"limit": 10_000}, timeout=30).json()["items"]
    return sorted(datetime.fromisoformat(i["accepted_at"]) for i in items if i["to"].startswith(prefix))


def _calls(times: list[datetime]) -> list[tuple[datetime, int]]:
    """(first accept, messages) of each provider call: accepts less than 0.2 s apart."""
    calls: list[tuple[datetime, int]] = []
    for t in times:
        if calls and (t - calls[-1][0]).total_seconds() < 0.2:
            calls[-1] = (calls[-1][0], calls[-1][1] + 1)
        else:
            calls.append((t, 1))
    return calls


def test_a_two_segment_run_sends_at_the_forecast_rate(world: World) -> None:
    with _api(world, world.small) as api:
        campaign_id = _campaign(api)
        run = api.post(f"/v1/campaigns/{campaign_id}/run-now")
        assert run.status_code == 201, run.text
        rate = run.json()["rate_per_s"]
    assert rate == pytest.approx(14.0)  # the capacity: 28 segments/s over 2 segments

    def all_sent() -> list[datetime] | None:
        times = _accepted_at(world, SMALL)
        return times if len(times) == AUDIENCE else None

    times = eventually(all_sent, timeout=120)
    start = times[0] + timedelta(seconds=1)  # past the buckets' one-second burst
    counts = []
    while start + timedelta(seconds=WINDOW_S) <= times[-1]:
        end = start + timedelta(seconds=WINDOW_S)
        counts.append(sum(start <= t < end for t in times))
        start = end
    print(f"{AUDIENCE} in {(times[-1] - times[0]).total_seconds():.1f}s; per {WINDOW_S:.0f}s: {counts}")
    assert len(counts) >= 3
    calls = _calls([t for t in times if t >= times[0] + timedelta(seconds=1)])
    # each call's messages took the time to the next call (the last is a partial window)
    measured = sum(n for _, n in calls[:-1]) / (calls[-1][0] - calls[0][0]).total_seconds()
    assert measured == pytest.approx(rate, rel=TOLERANCE), calls
    for n in counts:
        assert abs(n - rate * WINDOW_S) <= rate * PACE_WINDOW_S, counts
