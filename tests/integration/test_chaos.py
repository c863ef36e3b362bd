"""The CI-sized chaos run, the rebalance run and the embedded broker's documented recovery, on
one world of real processes (its own PostgreSQL, Redis and embedded broker, which the faults
restart).

Each run has its own tenant, campaign and workload; the invariants
(:mod:`hexcast.chaos.invariants`) are read from PostgreSQL and the provider's ledger at the
end. A failure prints the run's report, whose seed replays the schedule:
``hexcast chaos --seed N``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from hexcast.chaos.cli import chaos_report
from hexcast.chaos.runner import ChaosConfig, ChaosResult, chaos_in, world_for
from hexcast.chaos.workload import Rates
from hexcast.chaos.world import KINDS, World
from hexcast.testing import fetch_rows

SEED = 24


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    state: Path = tmp_path_factory.mktemp("chaos")
    # The route's capacity above the campaigns' max rates (the default account, 200/s with 70 %
    # for bulk, would stretch the 20,000 over 140 s: faults would hit half the campaign).
    with world_for(ChaosConfig(), state, overrides={"provider_rate_per_s": 1000.0}).started() as running:
        yield running


def _held(result: ChaosResult) -> None:
    report = chaos_report(result)
    print(report)
    assert result.settled, report
    assert not result.dead, report
    assert result.verdict.ok, report
    assert result.load.accepted_visits, report
    assert result.load.otps, report
    assert result.load.transactional, report
    assert result.load.stops, report


def test_every_process_kind_killed_and_postgres_and_redis_restarted_break_no_invariant(
        world: World) -> None:
    config = ChaosConfig(recipients=20_000, seed=SEED, window_s=70, max_rate=300, down_s=3,
                         rates=Rates(visits_per_s=15, stops=15))
    result = asyncio.run(chaos_in(world, config))
    kills = {d.fault.target for d in result.done if d.fault.kind == "kill"}
    assert kills == set(KINDS)
    assert {d.fault.kind for d in result.done} == {"kill", "postgres", "redis"}
    _held(result)


def test_one_two_one_bulk_senders_and_matchers_mid_campaign_break_no_invariant(world: World) -> None:
    config = ChaosConfig(recipients=5_000, seed=SEED, window_s=30, max_rate=200, rebalance=True,
                         rates=Rates(visits_per_s=15, stops=5))
    result = asyncio.run(chaos_in(world, config))
    assert [(d.fault.kind, d.fault.target) for d in result.done] == [
        ("add", "matcher"), ("add", "sender-bulk"), ("remove", "matcher"), ("remove", "sender-bulk")]
    assert [d.instance for d in result.done] == ["matcher-2", "sender-bulk-2", "matcher", "sender-bulk"]
    assert {k for k in world.kinds.values()} == set(KINDS)  # one of each again
    _held(result)


def test_after_the_memory_only_broker_restarts_the_documented_recovery_brings_everything_back(
        world: World) -> None:
    """The embedded broker keeps nothing: stopped and started, every topic is gone. README's
    recovery (``hexcast topics``, ``hexcast catalog sync``) recreates them and republishes the
    catalog and profiles; the running processes carry on without a restart, and a new workload
    (geo offers need the republished catalog) keeps every invariant."""
    world.restart_broker(down_s=2)
    config = ChaosConfig(recipients=1_000, seed=SEED, window_s=15, max_rate=200, faults=0,
                         rates=Rates(visits_per_s=15, stops=3))
    result = asyncio.run(chaos_in(world, config))
    _held(result)
    assert result.sent > 0
    offers = asyncio.run(fetch_rows(
        world.live.database_url, "SELECT count(*) AS n FROM messages WHERE tenant_id = $1"
        " AND lane = 'geo'", result.seeded.tenant_id))[0]["n"]
    assert offers > 0  # matched against the republished catalog (sent or held: the hour decides)
    assert not world.dead()
