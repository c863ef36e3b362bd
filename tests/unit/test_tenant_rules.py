"""A tenant's own window and caps: the intersection with the law, the smaller cap, the cache,
and the holds deferring by them (no I/O: an in-memory store, a fake loader, a fixed now)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from sender.holds import Holds
from sender.limits import CapRule
from sender.models import Lane, MessageState
from sender.outcome import Outcome
from sender.quiet import (
    DEFAULT_WINDOW,
    NEVER,
    STRICT_WINDOW,
    Window,
    is_allowed,
    narrowed,
    verdicts,
    window_for,
    zones_for,
)
from sender.repo import MessageRow
from sender.tenant_rules import LEGAL_RULES, TenantRules, TenantRulesCache
from tests.unit.senderfakes import MemoryStore, batch

CHICAGO = ZoneInfo("America/Chicago")
CHICAGO_NUMBER, OKLAHOMA_NUMBER = "+13125550100", "+14055550100"
PHONES = [CHICAGO_NUMBER, OKLAHOMA_NUMBER, "+12125550100", "+18085550100", "+442071234567",
          "+81312345678"]


def _chicago(h: int, mi: int = 0) -> datetime:
    return datetime(2026, 6, 1, h, mi, tzinfo=CHICAGO).astimezone(UTC)


clocks = st.times().map(lambda t: t.replace(microsecond=0))
windows = st.tuples(clocks, clocks).filter(lambda p: p[0] < p[1]).map(lambda p: Window(*p))


def test_the_tenant_window_narrows_the_legal_one() -> None:
    assert narrowed(DEFAULT_WINDOW, None) == DEFAULT_WINDOW
    assert narrowed(DEFAULT_WINDOW, Window(time(10), time(18))) == Window(time(10), time(18))
    assert narrowed(STRICT_WINDOW, Window(time(9), time(21))) == Window(time(9), time(20))


def test_a_tenant_window_outside_the_legal_one_is_never() -> None:
    assert narrowed(STRICT_WINDOW, Window(time(20), time(21))) is None
    assert narrowed(DEFAULT_WINDOW, Window(time(5), time(8))) is None
    late = Window(time(20, 30), time(21))  # allowed for Chicago, outside Oklahoma's 08-20
    at = _chicago(12)
    chicago, oklahoma = verdicts(at, [(CHICAGO_NUMBER, None), (OKLAHOMA_NUMBER, None)], tenant=late)
    assert chicago == _chicago(20, 30)
    assert oklahoma is NEVER


@given(legal=windows, tenant=windows, at=clocks)
def test_the_narrowed_window_is_within_both(legal: Window, tenant: Window, at: time) -> None:
    both = narrowed(legal, tenant)
    overlap = max(legal.start, tenant.start) < min(legal.end, tenant.end)
    assert (both is not None) == overlap
    allowed = both is not None and both.contains(at)
    assert allowed == (legal.contains(at) and tenant.contains(at))


@given(tenant=windows.filter(lambda w: DEFAULT_WINDOW.start <= w.start and w.end <= DEFAULT_WINDOW.end),
       phone=st.sampled_from(PHONES),
       at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1),
                       timezones=st.just(UTC)))
def test_a_deferral_lands_where_law_and_tenant_both_allow(tenant: Window, phone: str,
                                                          at: datetime) -> None:
    [later] = verdicts(at, [(phone, None)], tenant=tenant)
    zones, legal = zones_for(phone), window_for(phone)
    if later is None:
        later = at
    if later is not NEVER:
        assert later >= at
        assert is_allowed(later, zones, legal)
        assert is_allowed(later, zones, tenant)


@given(default=st.integers(1, 50), tenant=st.none() | st.integers(1, 50))
def test_caps_are_the_smaller_of_tenant_and_default(default: int, tenant: int | None) -> None:
    rule = CapRule(per_day=default, per_24h=default + 2, min_spacing_s=600)
    capped = TenantRules(cap_per_day=tenant, cap_per_24h=tenant).capped(rule)
    assert capped.per_day == (default if tenant is None else min(default, tenant))
    assert capped.per_24h == (default + 2 if tenant is None else min(default + 2, tenant))
    assert capped.min_spacing_s == rule.min_spacing_s


class _Loader:
    """Tenant rules from a dict, counting the lookups."""

    def __init__(self, rules: dict[int, TenantRules]) -> None:
        self.rules = rules
        self.calls: list[set[int]] = []

    async def __call__(self, tenant_ids: Collection[int]) -> dict[int, TenantRules]:
        self.calls.append(set(tenant_ids))
        return {t: self.rules[t] for t in tenant_ids if t in self.rules}


async def test_rules_are_kept_per_tenant_for_the_ttl() -> None:
    now = [0.0]
    narrow = TenantRules(cap_per_day=1)
    loader = _Loader({1: narrow})
    cache = TenantRulesCache(loader, ttl_s=30, clock=lambda: now[0])
    assert await cache([1, 2]) == {1: narrow, 2: LEGAL_RULES}  # unknown: the law's
    now[0] = 29.0
    assert await cache([1]) == {1: narrow}
    assert loader.calls == [{1, 2}]
    loader.rules[1] = LEGAL_RULES  # changed by the tenant
    now[0] = 30.0
    assert await cache([1, 3]) == {1: LEGAL_RULES, 3: LEGAL_RULES}
    assert loader.calls == [{1, 2}, {1, 3}]


async def test_holds_defer_by_the_tenant_window_only_its_tenants_messages() -> None:
    store = MemoryStore()
    narrow, late = Window(time(10), time(12)), Window(time(20, 30), time(21))
    loader = _Loader({1: TenantRules(window=narrow), 3: TenantRules(window=late)})
    rows = []
    for tenant in (1, 2, 3):
        more, _ = await store.enqueue(Lane.BULK, batch(
            2, lane=Lane.BULK, tenant=tenant, phones=[CHICAGO_NUMBER, OKLAHOMA_NUMBER],
            prefix=f"tenant{tenant}").items)
        rows += more
    holds = Holds(store=store, rules=loader)
    outcome = Outcome()
    at = _chicago(9)  # legal in Chicago and Oklahoma; before tenant 1's window
    allowed = await holds.apply(rows, outcome, at, {})
    assert loader.calls == [{1, 2, 3}]  # one lookup for the chunk
    assert sorted(r.message_key for r in allowed) == ["tenant2-0000", "tenant2-0001"]
    assert store.state("tenant1-0000") is MessageState.DEFERRED
    assert store.reason("tenant1-0000") == (
        f"quiet hours (tenant window 10:00-12:00) until {_chicago(10).isoformat()}")
    assert store.reason("tenant3-0000") == (
        f"quiet hours (tenant window 20:30-21:00) until {_chicago(20, 30).isoformat()}")
    assert store.state("tenant3-0001") is MessageState.EXPIRED  # Oklahoma ends at 20:00: never
    assert (outcome.deferred, outcome.expired) == (3, 1)

    later = await holds.apply(await _requeued(store, "tenant1-0001", "tenant2-0000"), Outcome(),
                              at - timedelta(hours=2), {})  # 07:00: the law holds both
    assert later == []
    assert str(store.reason("tenant1-0001")).startswith("quiet hours until ")


async def _requeued(store: MemoryStore, *keys: str) -> list[MessageRow]:
    rows = [store.row(k) for k in keys]
    await store.move(rows, MessageState.QUEUED, list(MessageState), "again")
    return [store.row(k) for k in keys]


async def test_rows_allowed_when_taken_are_deferred_if_quiet_hours_began_while_they_waited() -> None:
    """A chunk checked at 20:59:50 whose grants waited past 21:00 (the law's end in Chicago)
    is checked again before its provider call: nothing goes in quiet hours."""
    store = MemoryStore()
    rows, _ = await store.enqueue(Lane.BULK, batch(2, lane=Lane.BULK, phones=[CHICAGO_NUMBER] * 2,
                                                   prefix="late").items)
    holds = Holds(store=store, rules=_Loader({}))
    taken = _chicago(20, 59) + timedelta(seconds=50)
    assert await holds.apply(rows, Outcome(), taken, {}) == rows
    outcome = Outcome()
    assert await holds.quiet_now(rows, outcome, taken + timedelta(seconds=0.5), {}) == rows
    assert await holds.quiet_now(rows, outcome, taken + timedelta(seconds=11), {}) == []
    assert outcome.deferred == 2
    assert store.state("late-0000") is MessageState.DEFERRED
    assert str(store.reason("late-0000")).startswith("quiet hours until ")
