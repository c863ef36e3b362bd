"""Routing by lane and tenant with weights (pure: nothing here talks to a provider or Redis)."""

from __future__ import annotations

from collections import Counter

import pytest
import redis.asyncio as aioredis

from hexcast.core.errors import ConfigError
from hexcast.core.settings import load_settings
from sender.breaker import CircuitBreaker
from sender.limits import TokenBucket
from sender.models import Lane, ProviderSpec
from sender.providers import build_provider
from sender.routing import Route, Router, provider_specs, serves


def _route(name: str, **spec: object) -> Route:
    s = ProviderSpec.model_validate({"name": name, "url": "http://127.0.0.1:9", "token": "t", **spec})
    return Route(spec=s, adapter=build_provider(s, timeout_s=1, concurrency=1),
                 breaker=CircuitBreaker(name, failures=1, open_s=1),
                 bucket=TokenBucket(aioredis.Redis(), f"rl:{name}", rate=1, burst=1))


def test_serves_by_lane_and_tenant() -> None:
    everyone = ProviderSpec(name="a", url="http://x", token="t")
    bulk_for_7 = ProviderSpec(name="b", url="http://x", token="t", lanes=[Lane.BULK], tenants=[7])
    assert serves(everyone, Lane.OTP, 3)
    assert serves(bulk_for_7, Lane.BULK, 7)
    assert not serves(bulk_for_7, Lane.BULK, 8)
    assert not serves(bulk_for_7, Lane.OTP, 7)
    assert serves(bulk_for_7, Lane.BULK, None)  # no tenant: the lane alone decides


def test_primary_is_drawn_in_proportion_to_weights_among_the_tenants_accounts() -> None:
    router = Router([_route("big", weight=3), _route("small", weight=1),
                     _route("theirs", weight=1000, tenants=[99]),
                     _route("otp-only", weight=1000, lanes=["otp"])], seed=5)
    primaries = Counter(router.for_lane(Lane.BULK, 1)[0].spec.name for _ in range(4000))
    assert set(primaries) == {"big", "small"}
    assert 2.5 < primaries["big"] / primaries["small"] < 3.5
    order = [r.spec.name for r in router.for_lane(Lane.BULK, 1)]
    assert sorted(order) == ["big", "small"]  # the other account is the fallback
    assert {r.spec.name for r in router.for_lane(Lane.BULK, 99)} == {"big", "small", "theirs"}
    assert {r.spec.name for r in router.for_lane(Lane.OTP, 1)} == {"big", "small", "otp-only"}


def test_a_lower_priority_only_follows_every_route_of_a_higher_one() -> None:
    router = Router([_route("backup", weight=1000, priority=2), _route("p1", weight=1),
                     _route("p2", weight=1)], seed=3)
    orders = {tuple(r.spec.name for r in router.for_lane(Lane.BULK, 1)) for _ in range(200)}
    assert orders == {("p1", "p2", "backup"), ("p2", "p1", "backup")}


async def test_a_dry_run_tenant_gets_only_dry_run_routes_and_the_others_never_do() -> None:
    async def in_dry_run() -> set[int]:  # what the sender reads from tenants.send_mode
        return {7}

    router = Router([_route("live"), _route("rehearsal", kind="dryrun")], seed=1,
                    dry_run=in_dry_run)
    await router.refresh()
    assert [r.spec.name for r in router.for_lane(Lane.BULK, 7)] == ["rehearsal"]
    assert [r.spec.name for r in router.for_lane(Lane.BULK, 8)] == ["live"]
    assert router.serves(Lane.BULK, 7)


@pytest.mark.parametrize("value", [
    "[{\"name\": \"a\"}]",  # no url, no token
    "[]",
    '[{"name": "a", "url": "http://x", "token": "t"}, {"name": "a", "url": "http://y", "token": "t"}]',
    "not json",
])
def test_a_bad_provider_list_is_a_config_error_naming_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="HEXCAST_SENDER_PROVIDERS"):
        provider_specs(load_settings(sender_providers=value))


def test_no_provider_list_is_one_account_from_the_provider_settings() -> None:
    [spec] = provider_specs(load_settings(sender_providers="", provider_name="acct"))
    assert (spec.name, spec.mode) == ("acct", "batch")
