"""Issue 3's in-process limits: the H3 index lookup alone, and ``MatchState.match`` without a
broker, on the scenario's own catalog and profiles (read back from PostgreSQL).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from bench.common import Timer
from bench.loadgen import EVENTS_PER_POST, LoadPlan
from hexcast.core.db import connect_pool
from streams.matcher import MatchState
from streams.models import VisitEvent, VisitRecord
from targeting import repo as targeting_repo
from targeting.service import profile_record, promotion_record, store_record

__all__ = ["build_state", "inprocess_limits"]


async def build_state(dsn: str, *, resolution: int) -> tuple[MatchState, float]:
    """The matcher's state from the database, and how long building it took (s)."""
    pool = await connect_pool(dsn, max_size=1)
    state = MatchState(resolution=resolution, ttl=timedelta(minutes=30))
    timer = Timer()
    try:
        async with pool.acquire() as conn:
            for row in await targeting_repo.all_stores(conn):
                state.apply_catalog(store_record(row))
            for row in await targeting_repo.all_promotions(conn):
                state.apply_catalog(promotion_record(row))
            after = 0
            while rows := await targeting_repo.all_recipients(conn, after_id=after, limit=5000):
                for r in rows:
                    state.apply_profile(profile_record(r))
                after = rows[-1]["id"]
    finally:
        await pool.close()
    return state, timer.seconds


def _records(plan: LoadPlan, tenant_id: int, posts: int) -> list[VisitRecord]:
    now = datetime.now(UTC)
    records = []
    for n in range(posts):
        events = plan.post(n, now)["events"]
        by_user: dict[str, list[VisitEvent]] = {}
        for e in events:
            by_user.setdefault(e["user_id"], []).append(VisitEvent.model_validate(e))
        records += [VisitRecord(tenant_id=tenant_id, user_id=u, events=ev, received_at=now)
                    for u, ev in by_user.items()]
    return records


async def inprocess_limits(dsn: str, *, tenant_id: int, spots: list[list[float]], users: int,
                           resolution: int, posts: int = 500) -> dict[str, float]:
    """Lookups/s of ``CellIndex.containing`` and visits/s of ``MatchState.match`` (20-event and
    1-event records), single-threaded in this process."""
    state, build_s = await build_state(dsn, resolution=resolution)
    out: dict[str, float] = {"state_build_s": build_s}
    for per_user in (EVENTS_PER_POST, 1):
        records = _records(LoadPlan(spots, users=users, user_offset=0, per_user=per_user, seed=5),
                           tenant_id, posts)
        visits = sum(len(r.events) for r in records)
        timer = Timer()
        for record in records:
            state.match(record)
        out[f"match {per_user}-event records, visits/s"] = timer.rate(visits)
    rng = random.Random(9)
    points = [(s[0] + rng.uniform(-0.001, 0.001), s[1] + rng.uniform(-0.001, 0.001))
              for s in (spots[rng.randrange(len(spots))] for _ in range(20_000))]
    timer = Timer()
    for lat, lng in points:
        state.index.containing(lat, lng)
    out["index lookups/s"] = timer.rate(len(points))
    return out
