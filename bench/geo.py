"""Scenario 2's world: stores and promotions over a real metro area, and an audience for them.

Generation is pure and deterministic from a seed; loading goes through COPY (cells computed
with the product's own ``fence_cells``), and the matchers get it from ``hexcast catalog sync``.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from hexcast.core.tenants import create_tenant
from hexcast.synth import INTERESTS, METROS, Metro
from targeting.geofence import destination
from targeting.models import StoreCreate
from targeting.service import fence_cells

__all__ = ["METRO", "SIGMA_M", "GeoWorld", "StoreSpot", "generate_stores", "load_world", "user_interests"]


#: Chicago; stores spread around the centre with this standard deviation (≈ 40 km across).
METRO = METROS[0]
SIGMA_M = 7000.0
_TOP = sorted({i.split("/")[0] for i in INTERESTS})


@dataclass(frozen=True, slots=True)
class StoreSpot:
    lat: float
    lng: float
    radius_m: float
    square: bool


@dataclass(frozen=True, slots=True)
class GeoWorld:
    tenant_id: int
    api_key: str
    stores: list[StoreSpot]
    promotions: int
    users: int

    def write(self, path: Path) -> None:
        """The store spots the load generator walks users to (it needs nothing else)."""
        path.write_text(json.dumps([[s.lat, s.lng, s.radius_m] for s in self.stores]))


def generate_stores(count: int, *, seed: int = 7, metro: Metro = METRO) -> list[StoreSpot]:
    """``count`` store spots: Gaussian around the centre (capped at 3 sigma), 40–120 m fences."""
    rng = random.Random(seed)
    spots: list[StoreSpot] = []
    for n in range(count):
        dist = min(abs(rng.gauss(0, SIGMA_M)), 3 * SIGMA_M)
        lat, lng = destination(metro.lat, metro.lng, dist, rng.uniform(0, 360))
        spots.append(StoreSpot(round(lat, 6), round(lng, 6), rng.choice((40.0, 60.0, 80.0, 120.0)),
                               square=n % 5 == 4))
    return spots


def user_interests(n: int) -> list[str]:
    """Every user holds two top-level interests, so most promotions find some audience."""
    return [_TOP[n % len(_TOP)], _TOP[(n // len(_TOP) + 1) % len(_TOP)]]


def _fence(spot: StoreSpot) -> dict[str, object]:
    if not spot.square:
        return {"type": "circle", "radius_m": spot.radius_m}
    corners = [destination(spot.lat, spot.lng, spot.radius_m * math.sqrt(2), b)
               for b in (45, 135, 225, 315, 45)]
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for y, x in corners]]}


def _promotion_interests(store: int, k: int) -> list[str]:
    if k == 0:
        return []  # each store has one untargeted offer
    return [INTERESTS[(store * 7 + k * 3) % len(INTERESTS)]]


async def _copy_stores(conn: asyncpg.Connection, tenant_id: int, spots: list[StoreSpot],
                       resolution: int) -> list[int]:
    rows = []
    for n, s in enumerate(spots):
        fence = _fence(s)
        create = StoreCreate.model_validate({"name": f"store {n}", "lat": s.lat, "lng": s.lng,
                                             "time_zone": METRO.time_zone, "geofence": fence})
        rows.append((tenant_id, f"store {n}", s.lat, s.lng, METRO.time_zone, json.dumps(fence),
                     fence_cells(create, resolution=resolution), resolution))
    await conn.copy_records_to_table(
        "stores", records=rows,
        columns=["tenant_id", "name", "lat", "lng", "time_zone", "geofence", "cells", "h3_resolution"])
    found = await conn.fetch("SELECT id FROM stores WHERE tenant_id = $1 ORDER BY id", tenant_id)
    return [r["id"] for r in found]


def _promotion_rows(tenant_id: int, store_ids: list[int], per_store: int) -> Iterator[tuple[object, ...]]:
    for n, store_id in enumerate(store_ids):
        for k in range(per_store):
            yield (tenant_id, store_id, f"offer {n}.{k}", f"Store {n}: today 20% off, offer {k}",
                   _promotion_interests(n, k))


def _user_rows(tenant_id: int, users: int) -> Iterator[tuple[object, ...]]:
    consent = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(users):
        yield (tenant_id, f"v{n}", f"+1312{2_000_000 + n:07d}", METRO.time_zone, user_interests(n),
               consent, "bench", "Offers by SMS. Reply STOP to end.")


async def load_world(dsn: str, *, stores: int, promotions_per_store: int, users: int,
                     resolution: int) -> GeoWorld:
    """Tenant, stores (COPY, with their H3 covers), promotions and consenting users (COPY)."""
    conn = await asyncpg.connect(dsn)
    try:
        tenant, key = await create_tenant(conn, name=f"visits-{uuid.uuid4().hex[:6]}")
        spots = generate_stores(stores)
        store_ids = await _copy_stores(conn, tenant.id, spots, resolution)
        await conn.copy_records_to_table(
            "promotions", records=_promotion_rows(tenant.id, store_ids, promotions_per_store),
            columns=["tenant_id", "store_id", "name", "body", "interests"])
        await conn.copy_records_to_table(
            "recipients", records=_user_rows(tenant.id, users),
            columns=["tenant_id", "user_id", "phone", "time_zone", "interests", "consent_at",
                     "consent_source", "consent_text"])
        return GeoWorld(tenant.id, key, spots, len(store_ids) * promotions_per_store, users)
    finally:
        await conn.close()
