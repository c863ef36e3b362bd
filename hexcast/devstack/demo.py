"""A small demo city (Chicago): stores, promotions, recipients and visits, seeded over HTTP."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hexcast.core.errors import HexcastError

__all__ = ["DEMO_CAMPAIGN_RATE", "DEMO_PREFIX", "DemoStore", "demo_stores", "demo_visits", "seed_demo",
           "start_demo_campaign"]

DEMO_PREFIX = "demo-"
_CONSENT = {"at": "2026-01-01T00:00:00Z", "source": "demo app", "text": "Offers by SMS. STOP to end."}


@dataclass(frozen=True, slots=True)
class DemoStore:
    name: str
    lat: float
    lng: float
    geofence: dict[str, Any]
    promo: str
    interests: list[str]


def demo_stores() -> list[DemoStore]:
    """Real places in Chicago, with circle and polygon geofences."""
    navy_pier = [[-87.6140, 41.8925], [-87.6010, 41.8925], [-87.6010, 41.8908],
                 [-87.6140, 41.8908], [-87.6140, 41.8925]]
    return [
        DemoStore("Coffee · Millennium Park", 41.8826, -87.6226,
                  {"type": "circle", "radius_m": 120}, "Free pastry with any latte today",
                  ["food/coffee"]),
        DemoStore("Electronics · State St", 41.8837, -87.6278,
                  {"type": "circle", "radius_m": 100}, "20% off phone cases, today only",
                  ["electronics"]),
        DemoStore("Books · Navy Pier", 41.8916, -87.6075,
                  {"type": "Polygon", "coordinates": [navy_pier]},
                  "Buy 2 paperbacks, get 1 free", ["books"]),
        DemoStore("Sports · Wrigleyville", 41.9484, -87.6553,
                  {"type": "circle", "radius_m": 200}, "Cubs caps 2 for $30 before the game",
                  ["sports/baseball"]),
    ]


_INTERESTS = ["food/coffee", "electronics/phones", "books", "sports/baseball", "garden"]


def _recipients(count: int, rng: random.Random) -> list[dict[str, Any]]:
    people = []
    for n in range(count):
        people.append({
            "user_id": f"demo-user-{n:04d}",
            "phone": f"+1312201{n:04d}",
            "time_zone": "America/Chicago",
            "interests": rng.sample(_INTERESTS, k=rng.randint(1, 3)),
            "consent": _CONSENT if rng.random() < 0.9 else None,
        })
    return people


def _jitter(lat: float, lng: float, metres: float, rng: random.Random) -> tuple[float, float]:
    r, theta = metres * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    dlat = r * math.cos(theta) / 111_320
    dlng = r * math.sin(theta) / (111_320 * math.cos(math.radians(lat)))
    return lat + dlat, lng + dlng


def demo_visits(count: int, recipients: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """Visits by demo users: about 60% inside a store's fence, the rest around the city."""
    rng = random.Random(seed)
    stores = demo_stores()
    now = datetime.now(UTC)
    events = []
    for n in range(count):
        if rng.random() < 0.6:
            store = rng.choice(stores)
            lat, lng = _jitter(store.lat, store.lng, 60, rng)
        else:
            lat, lng = _jitter(41.88, -87.65, 8000, rng)
        events.append({
            "event_id": f"demo-ev-{n:05d}", "user_id": f"demo-user-{rng.randrange(recipients):04d}",
            "lat": round(lat, 6), "lng": round(lng, 6), "accuracy_m": rng.choice([5, 10, 25]),
            "ts": (now - timedelta(seconds=count - n)).isoformat(),
        })
    return events


def seed_demo(api: httpx.Client, *, recipients: int = 300, seed: int = 7) -> dict[str, int]:
    """Create the demo catalog and audience through the API (so matchers receive it)."""
    rng = random.Random(seed)
    for store in demo_stores():
        created = _ok(api.post("/v1/stores", json={
            "name": store.name, "lat": store.lat, "lng": store.lng,
            "time_zone": "America/Chicago", "geofence": store.geofence,
        }))
        _ok(api.post("/v1/promotions", json={
            "store_id": created["id"], "name": store.name, "body": store.promo,
            "interests": store.interests,
        }))
    for person in _recipients(recipients, rng):
        _ok(api.post("/v1/recipients", json={k: v for k, v in person.items() if v is not None}))
    campaign = start_demo_campaign(api)
    return {"stores": len(demo_stores()), "recipients": recipients, "campaign": campaign}


DEMO_CAMPAIGN_RATE = 2.0
"""The demo campaign's max_rate: its audience (~270 with consent) takes a couple of minutes, so
the console shows it running, its progress bar moving."""


def start_demo_campaign(api: httpx.Client) -> int:
    """A campaign to every consenting demo recipient, run now at ``DEMO_CAMPAIGN_RATE``: its id."""
    next_year = datetime.now(UTC).year + 1
    created = _ok(api.post("/v1/campaigns", json={
        "name": "Winter sale (demo)", "segment": {"everyone": True},
        "body": "Winter sale: 25% off coats and boots this weekend in every Chicago store. "
                "Reply STOP to opt out.",
        "time_zone": "America/Chicago", "run_at": f"{next_year}-01-15T10:00:00",
        "max_rate": DEMO_CAMPAIGN_RATE,
    }))
    _ok(api.post(f"/v1/campaigns/{created['id']}/run-now"))
    return int(created["id"])


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 300:
        raise HexcastError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json()
    return body
