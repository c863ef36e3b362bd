"""Provider accounts the sender routes to: adapter, circuit breaker and shared rate limit each.

Routing is by lane and tenant with weights: among the accounts serving the lane and the tenant
(``ProviderSpec.lanes``/``tenants``), each call picks a primary at random in proportion to the
weights, then the others follow in weighted order as fallbacks.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import redis.asyncio as aioredis
from pydantic import ConfigDict, TypeAdapter, ValidationError

from hexcast.core.cache import Keys
from hexcast.core.errors import ConfigError
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from sender import metrics
from sender.breaker import BreakerState, CircuitBreaker
from sender.limits import FairShare, TokenBucket
from sender.models import Lane, ProviderSpec
from sender.providers import Provider, build_provider
from sender.route_control import RouteControl, RouteState
from sender.routes_file import load_routes

__all__ = ["Route", "Router", "build_router", "provider_specs", "serves", "weighted_order"]

log = get_logger("hexcast.sender")


@dataclass(slots=True)
class Route:
    spec: ProviderSpec
    adapter: Provider
    breaker: CircuitBreaker
    bucket: TokenBucket
    fair: FairShare | None = None  # bulk lane: the tenants' fair share of the bulk capacity
    requests: TokenBucket | None = None  # the account's requests/s, if it has such a limit
    # One call to the account at a time per process: concurrent actors must not issue a
    # request after another one's 429 (they re-check the pause inside it).
    calling: asyncio.Lock = field(default_factory=asyncio.Lock)


def provider_specs(settings: Settings) -> list[ProviderSpec]:
    """The configured provider accounts: the routes file if set, else the JSON list, else
    one batch account from provider_*. Read once per process and configuration (the api looks
    routes up on every provider callback; a changed file needs a restart, as for the senders)."""
    return list(_specs(settings.providers_file, settings.sender_providers, settings.provider_name,
                       settings.provider_url, settings.provider_token))


_SPEC_LIST = TypeAdapter(list[ProviderSpec], config=ConfigDict(hide_input_in_errors=True))
"""The JSON list's validator: an error names the route's index and field, never its input
(the tokens)."""


@lru_cache(maxsize=8)
def _specs(
    providers_file: str, sender_providers: str, name: str, url: str, token: str
) -> tuple[ProviderSpec, ...]:
    if providers_file:
        return tuple(load_routes(providers_file))
    if sender_providers.strip():
        try:
            specs = _SPEC_LIST.validate_json(sender_providers)
        except ValidationError as exc:
            raise ConfigError(f"invalid settings: HEXCAST_SENDER_PROVIDERS: {exc}") from None
        if not specs or len({s.name for s in specs}) != len(specs):
            raise ConfigError("invalid settings: HEXCAST_SENDER_PROVIDERS: must be a non-empty list"
                              " of providers with unique names")
        return tuple(specs)
    return (ProviderSpec(name=name, url=url, token=token),)


def serves(spec: ProviderSpec, lane: Lane, tenant: int | None, country: str | None = None) -> bool:
    """Whether the account takes ``lane`` traffic of ``tenant`` to numbers of ``country``
    (an account limited to some countries takes no number whose country is unknown)."""
    return (lane in spec.lanes
            and (tenant is None or spec.tenants is None or tenant in spec.tenants)
            and (spec.countries is None or country in spec.countries))


def weighted_order(routes: list[Route], rng: random.Random) -> list[Route]:
    """All ``routes``: by priority (1 first: the grants try the next priority when every route
    before it fails, is stopped or has no capacity at that moment), and within a priority by
    repeated weighted draws without replacement."""
    order: list[Route] = []
    for priority in sorted({r.spec.priority for r in routes}):
        left = [r for r in routes if r.spec.priority == priority]
        while left:
            pick = rng.choices(range(len(left)), weights=[r.spec.weight for r in left])[0]
            order.append(left.pop(pick))
    return order


class Router:
    """The accounts of one sender process. With ``control``, routes an operator drained or
    disabled are left out of new grants (re-read at most every ``refresh_s``)."""

    def __init__(
        self, routes: list[Route], *, seed: int | None = None,
        control: RouteControl | None = None, refresh_s: float = 1.0,
        dry_run: Callable[[], Awaitable[set[int]]] | None = None,
    ) -> None:
        self.routes = routes
        self._control = control
        self._dry_run_source = dry_run
        self._dry_run: set[int] = set()  # tenants in dry run: dry-run routes only
        self._refresh_s = refresh_s
        self._refreshed = -refresh_s
        self._refreshing = asyncio.Lock()
        self._stopped: set[str] = set()
        self._by_name = {r.spec.name: r for r in routes}
        self._rng = random.Random(seed)

    @staticmethod
    def breaker_changed(name: str, old: BreakerState, new: BreakerState) -> None:
        """Log a transition and show the new state (``hexcast_breaker_state``)."""
        log.warning("breaker_transition", provider=name, from_state=old.value, to_state=new.value)
        metrics.breaker_moved(name, new.value)

    def add(self, route: Route) -> None:
        self.routes.append(route)
        self._by_name[route.spec.name] = route

    @property
    def by_country(self) -> bool:
        """Whether some account serves some countries only (then calls go per country)."""
        return any(r.spec.countries is not None for r in self.routes)

    def for_lane(
        self, lane: Lane, tenant: int | None = None, country: str | None = None
    ) -> list[Route]:
        """Every provider serving ``lane`` (and ``tenant``, ``country``, if given) and not
        stopped by an operator, primary first."""
        return weighted_order([r for r in self._for(lane, tenant, country)
                               if r.spec.name not in self._stopped], self._rng)

    def serves(self, lane: Lane, tenant: int | None = None, country: str | None = None) -> bool:
        """Whether any account is configured for ``lane``, ``tenant`` and ``country`` (stopped
        or not)."""
        return bool(self._for(lane, tenant, country))

    def _for(self, lane: Lane, tenant: int | None, country: str | None) -> list[Route]:
        """The accounts for ``lane``, ``tenant`` and ``country``: dry-run ones for a tenant in
        dry run, live ones for the others."""
        dry = tenant is not None and tenant in self._dry_run
        return [r for r in self.routes
                if serves(r.spec, lane, tenant, country) and (r.spec.kind == "dryrun") == dry]

    async def refresh(self) -> None:
        """Re-read the operators' route states if the last read is older than ``refresh_s``."""
        if (self._control is None and self._dry_run_source is None) \
                or time.monotonic() - self._refreshed < self._refresh_s:
            return
        async with self._refreshing:  # callers meanwhile wait for this read, not the old states
            started = time.monotonic()
            if started - self._refreshed < self._refresh_s:
                return  # read while this caller waited
            try:
                await self._read_states()
            finally:
                self._refreshed = started  # a failed read is retried after refresh_s, too

    async def _read_states(self) -> None:
        if self._dry_run_source is not None:
            self._dry_run = await self._dry_run_source()
        states = await self._control.states() if self._control is not None else {}
        stopped = {name for name, state in states.items() if state is not RouteState.ENABLED}
        if stopped != self._stopped:
            log.warning("routes_stopped", routes=sorted(stopped))
        self._stopped = stopped

    @asynccontextmanager
    async def calling(self, route: Route) -> AsyncIterator[None]:
        """A provider call to ``route``, registered while it runs (what ``drain`` waits for)."""
        if self._control is None:
            yield
            return
        async with self._control.call(route.spec.name):
            yield

    def by_name(self, name: str | None) -> Route | None:
        return self._by_name.get(name) if name is not None else None

    def breaker_states(self) -> dict[str, str]:
        return {r.spec.name: r.breaker.state.value for r in self.routes}

    async def aclose(self) -> None:
        for route in self.routes:
            await route.adapter.aclose()


def _bucket(
    settings: Settings, client: aioredis.Redis, spec: ProviderSpec, lane: Lane
) -> tuple[TokenBucket, FairShare | None]:
    """The account's shared bucket; geo and bulk also take from the part of it the otp and
    transactional lanes leave them, the bulk lane from its own capped share too, and each
    tenant on the bulk lane from its fair share of that."""
    keys = Keys(settings.redis_prefix)
    rate = spec.rate_per_s or settings.provider_rate_per_s
    burst = max(settings.provider_burst if spec.rate_per_s is None else rate, 1.0)
    bucket = TokenBucket(client, keys("rl", "provider", spec.name), rate=rate, burst=burst,
                         pausable=True)
    if lane in (Lane.OTP, Lane.TRANSACTIONAL):
        return bucket, None
    if settings.sender_transactional_share > 0:
        left = 1.0 - settings.sender_transactional_share
        bucket = bucket.capped(keys("rl", "provider", spec.name, "marketing"), rate=rate * left,
                               burst=max(burst * left, 1.0))
    if lane is not Lane.BULK:
        return bucket, None
    share = settings.sender_bulk_share
    bulk_rate, bulk_burst = rate * share, max(burst * share, 1.0)
    bucket = bucket.capped(keys("rl", "provider", spec.name, "bulk"), rate=bulk_rate,
                           burst=bulk_burst)
    fair = FairShare(key=keys("rl", "provider", spec.name, "bulk", "tenant"),
                     active_key=keys("rl", "provider", spec.name, "bulk", "active"),
                     rate=bulk_rate, burst=bulk_burst, window_s=settings.sender_fair_window_s)
    return bucket, fair


def build_router(
    settings: Settings, client: aioredis.Redis, lane: Lane,
    dry_run: Callable[[], Awaitable[set[int]]] | None = None,
) -> Router:
    """The lane's router; ``dry_run`` reads which tenants are in dry run (with it, a dry-run
    route named ``dryrun`` is added when the configuration has none)."""
    keys = Keys(settings.redis_prefix)
    router = Router([], control=RouteControl(client, keys), dry_run=dry_run)
    specs = provider_specs(settings)
    if dry_run is not None and not any(s.kind == "dryrun" for s in specs):
        specs.append(ProviderSpec(name="dryrun", kind="dryrun", token="-"))
    for spec in specs:
        bucket, fair = _bucket(settings, client, spec, lane)
        requests = None
        if spec.requests_per_s is not None:
            requests = TokenBucket(client, Keys(settings.redis_prefix)("rl", "provider", spec.name,
                                                                      "requests"),
                                   rate=spec.requests_per_s, burst=max(spec.requests_per_s, 1.0))
        router.add(Route(
            spec=spec,
            adapter=build_provider(spec, timeout_s=settings.provider_timeout_s,
                                   concurrency=spec.concurrency or settings.sender_single_concurrency),
            breaker=CircuitBreaker(spec.name, failures=settings.sender_breaker_failures,
                                   open_s=settings.sender_breaker_open_s,
                                   on_change=router.breaker_changed),
            bucket=bucket,
            fair=fair,
            requests=requests,
        ))
    metrics.start_routes(lane.value, [s.name for s in specs])
    return router
