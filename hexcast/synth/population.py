"""A synthetic demo dataset for analysts: stores in three real metros, personas, visits, geo SMS.

Pure generation (deterministic from a seed and an end time); :mod:`hexcast.synth.loader`
bulk-loads it with COPY into a migrated database, with a finished campaign
(:mod:`hexcast.synth.campaign`). Recipients draw their interests from a few latent
personas, so clustering finds structure; visits favour stores that fit the visitor's persona;
the geo messages are exactly what the matcher would send for the visits inside store fences.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import h3
from pydantic import BaseModel, Field

from streams import ARCHIVE_RESOLUTION
from streams.matcher import MatchState
from streams.models import VisitEvent, VisitRecord
from targeting.geofence import destination
from targeting.models import CatalogRecord, ProfileRecord, PromotionEntry, StoreEntry

__all__ = [
    "DEMO_TENANT",
    "INTERESTS",
    "METROS",
    "PERSONAS",
    "Metro",
    "SynthData",
    "SynthMessage",
    "SynthParams",
    "SynthPromotion",
    "SynthRecipient",
    "SynthStore",
    "SynthVisit",
    "generate",
    "geo_messages",
]

#: Name of the tenant that holds the synthetic data (the loader replaces it on each load).
DEMO_TENANT = "hexcast-synthetic-demo"


@dataclass(frozen=True, slots=True)
class Metro:
    name: str
    lat: float
    lng: float
    time_zone: str
    area_code: str
    share: float  # of stores and recipients


METROS = (
    Metro("Chicago", 41.8819, -87.6278, "America/Chicago", "312", 0.4),
    Metro("New York", 40.7549, -73.9840, "America/New_York", "212", 0.35),
    Metro("Los Angeles", 34.0522, -118.2437, "America/Los_Angeles", "213", 0.25),
)

INTERESTS = (
    "electronics/phones", "electronics/laptops", "electronics/gaming",
    "food/coffee", "food/grocery", "food/bakery",
    "sports/baseball", "sports/running", "sports/basketball",
    "fashion/shoes", "fashion/streetwear", "beauty/skincare",
    "books/fiction", "books/comics", "home/garden", "home/kitchen",
)

#: Latent personas: the probability of holding each interest (others: a small baseline).
PERSONAS: dict[str, dict[str, float]] = {
    "techie": {"electronics/phones": 0.85, "electronics/laptops": 0.7, "electronics/gaming": 0.6,
               "books/comics": 0.4, "food/coffee": 0.4},
    "athlete": {"sports/running": 0.8, "sports/baseball": 0.6, "sports/basketball": 0.6,
                "fashion/shoes": 0.5, "food/grocery": 0.3},
    "foodie": {"food/coffee": 0.8, "food/bakery": 0.7, "food/grocery": 0.6, "home/kitchen": 0.6},
    "homebody": {"home/garden": 0.8, "home/kitchen": 0.6, "books/fiction": 0.7, "food/bakery": 0.3},
    "trendsetter": {"fashion/streetwear": 0.8, "fashion/shoes": 0.7, "beauty/skincare": 0.7,
                    "food/coffee": 0.3},
}
_BASELINE = 0.04

#: Store categories: the interests their promotions target, and the offer.
_CATEGORIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("Coffee", ("food/coffee",), "Free pastry with any latte today"),
    ("Bakery", ("food/bakery",), "Fresh sourdough, 2 for 1 until noon"),
    ("Grocery", ("food/grocery",), "10% off your basket today"),
    ("Phones", ("electronics/phones",), "20% off phone cases, today only"),
    ("Computers", ("electronics/laptops", "electronics/gaming"), "Laptop sleeves half price"),
    ("Sports", ("sports",), "Team caps 2 for $30 before the game"),
    ("Running", ("sports/running", "fashion/shoes"), "Free gait analysis with any shoe"),
    ("Fashion", ("fashion",), "Streetwear drop: 15% off today"),
    ("Beauty", ("beauty/skincare",), "Free skincare sample with any purchase"),
    ("Books", ("books",), "Buy 2 paperbacks, get 1 free"),
    ("Home", ("home/kitchen", "home/garden"), "Kitchen and garden tools 25% off"),
)
_STATES = (("delivered", 0.84), ("accepted", 0.06), ("failed", 0.07), ("expired", 0.03))


class SynthParams(BaseModel):
    """What to generate; ``until`` ends the visit history (visits span ``days`` before it)."""

    recipients: int = Field(default=5000, ge=10, le=1_000_000)
    stores: int = Field(default=50, ge=3, le=1000)
    visits_per_recipient: float = Field(default=10.0, gt=0, le=1000)
    days: int = Field(default=30, ge=1, le=365)
    seed: int = 7
    until: datetime = Field(default_factory=lambda: datetime(2026, 11, 1, tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class SynthStore:
    name: str
    metro: str
    lat: float
    lng: float
    time_zone: str
    geofence: dict[str, object]


@dataclass(frozen=True, slots=True)
class SynthPromotion:
    store: int  # index into SynthData.stores
    name: str
    body: str
    interests: list[str]


@dataclass(frozen=True, slots=True)
class SynthRecipient:
    user_id: str
    phone: str
    time_zone: str | None
    interests: list[str]
    persona: str
    metro: str
    consent_at: datetime | None
    opted_out_at: datetime | None


@dataclass(frozen=True, slots=True)
class SynthVisit:
    event_id: str
    user_id: str
    lat: float
    lng: float
    accuracy_m: float
    cell: str
    ts: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class SynthMessage:
    message_key: str
    user_id: str
    phone: str
    body: str
    promotion_id: int
    state: str
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class SynthData:
    params: SynthParams
    stores: list[SynthStore]
    promotions: list[SynthPromotion]
    recipients: list[SynthRecipient]
    visits: list[SynthVisit]


def generate(params: SynthParams) -> SynthData:
    """The whole dataset, deterministic from ``params`` (pure: no I/O, no clock)."""
    rng = random.Random(params.seed)
    stores, categories = _stores(params.stores, rng)
    promotions = _promotions(stores, categories)
    recipients = _recipients(params, rng)
    visits = _visits(params, stores, categories, recipients, rng)
    return SynthData(params, stores, promotions, recipients, visits)


def _split(total: int) -> list[int]:
    counts = [max(1, int(total * m.share)) for m in METROS]
    counts[0] += total - sum(counts)
    return counts


def _offset(lat: float, lng: float, sigma_m: float, rng: random.Random) -> tuple[float, float]:
    dist = min(abs(rng.gauss(0, sigma_m)), 3 * sigma_m)
    return destination(lat, lng, dist, rng.uniform(0, 360))


def _stores(count: int, rng: random.Random) -> tuple[list[SynthStore], list[int]]:
    stores: list[SynthStore] = []
    categories: list[int] = []
    for metro, n in zip(METROS, _split(count), strict=True):
        for i in range(n):
            cat = (len(stores) + i) % len(_CATEGORIES)
            lat, lng = _offset(metro.lat, metro.lng, 5000, rng)
            stores.append(SynthStore(
                name=f"{_CATEGORIES[cat][0]} · {metro.name} {i + 1}", metro=metro.name,
                lat=round(lat, 6), lng=round(lng, 6), time_zone=metro.time_zone,
                geofence=_fence(lat, lng, rng.choice((60, 80, 100, 150)), square=i % 5 == 4),
            ))
            categories.append(cat)
    return stores, categories


def _fence(lat: float, lng: float, radius_m: float, *, square: bool) -> dict[str, object]:
    if not square:
        return {"type": "circle", "radius_m": radius_m}
    corners = [destination(lat, lng, radius_m * math.sqrt(2), b) for b in (45, 135, 225, 315, 45)]
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for y, x in corners]]}


def _promotions(stores: Sequence[SynthStore], categories: Sequence[int]) -> list[SynthPromotion]:
    promos = []
    for n, (store, cat) in enumerate(zip(stores, categories, strict=True)):
        name, interests, body = _CATEGORIES[cat]
        promos.append(SynthPromotion(n, f"{name} offer", body, list(interests)))
        if n % 4 == 0:  # some stores also run an untargeted offer
            promos.append(SynthPromotion(n, "Store event", f"Tonight at {store.name}: live music", []))
    return promos


def _recipients(params: SynthParams, rng: random.Random) -> list[SynthRecipient]:
    out: list[SynthRecipient] = []
    consent = params.until - timedelta(days=params.days + 30)
    names = sorted(PERSONAS)
    for metro, n in zip(METROS, _split(params.recipients), strict=True):
        for i in range(n):
            persona = rng.choice(names)
            wanted = [x for x in INTERESTS if rng.random() < PERSONAS[persona].get(x, _BASELINE)]
            consented = rng.random() < 0.92
            out.append(SynthRecipient(
                user_id=f"synth-{len(out):06d}",
                phone=f"+1{metro.area_code}{2_000_000 + i:07d}",
                time_zone=metro.time_zone if rng.random() < 0.95 else None,
                interests=wanted or [max(PERSONAS[persona], key=PERSONAS[persona].__getitem__)],
                persona=persona, metro=metro.name,
                consent_at=consent if consented else None,
                opted_out_at=consent + timedelta(days=10) if consented and rng.random() < 0.03 else None,
            ))
    return out


def _affinity(persona: str, interests: Sequence[str]) -> float:
    probs = PERSONAS[persona]
    return 0.1 + sum(p for k, p in probs.items() if any(k.startswith(i) for i in interests))


def _visits(
    params: SynthParams, stores: Sequence[SynthStore], categories: Sequence[int],
    recipients: Sequence[SynthRecipient], rng: random.Random,
) -> list[SynthVisit]:
    by_metro = {m.name: [i for i, s in enumerate(stores) if s.metro == m.name] for m in METROS}
    metros = {m.name: m for m in METROS}
    homes = [_offset(metros[r.metro].lat, metros[r.metro].lng, 6000, rng) for r in recipients]
    activity = [rng.lognormvariate(0, 0.8) for _ in recipients]
    total = round(params.visits_per_recipient * len(recipients))
    who = rng.choices(range(len(recipients)), weights=activity, k=total)
    visits: list[SynthVisit] = []
    weights = {(m, p): [_affinity(p, _CATEGORIES[categories[s]][1]) for s in options]
               for m, options in by_metro.items() for p in PERSONAS}
    for n, r in enumerate(who):
        person = recipients[r]
        if rng.random() < 0.5:
            options = by_metro[person.metro]
            store = stores[rng.choices(options, weights=weights[person.metro, person.persona])[0]]
            lat, lng = _offset(store.lat, store.lng, 25, rng)
        else:
            lat, lng = _offset(*homes[r], 1500, rng)
        user = person.user_id if rng.random() > 0.02 else f"anon-{n:06d}"  # a few unknown users
        visits.append(_visit(params, n, user, lat, lng, metros[person.metro].time_zone, rng))
    return visits


def _visit(
    params: SynthParams, n: int, user: str, lat: float, lng: float, zone: str, rng: random.Random
) -> SynthVisit:
    tz = ZoneInfo(zone)
    day = params.until.astimezone(tz).date() - timedelta(days=rng.randrange(params.days) + 1)
    hour = rng.choices(range(24), weights=[1, 1, 1, 1, 1, 2, 4, 8, 10, 9, 9, 11, 14, 12, 10, 10,
                                           12, 15, 16, 13, 9, 6, 3, 2])[0]
    local = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=tz)
    ts = local.astimezone(UTC)  # before the local day of ``until`` began
    lat, lng = round(lat, 6), round(lng, 6)
    return SynthVisit(
        event_id=f"synth-{params.seed}-{n:07d}", user_id=user, lat=lat, lng=lng,
        accuracy_m=float(rng.choice((5, 10, 20, 50))),
        cell=h3.latlng_to_cell(lat, lng, ARCHIVE_RESOLUTION), ts=ts,
        received_at=ts + timedelta(seconds=rng.randint(1, 30)),
    )


def geo_messages(
    data: SynthData, *, tenant_id: int, store_ids: Sequence[int], promotion_ids: Sequence[int],
    cells: Sequence[list[str]], resolution: int, opted_out: Mapping[str, datetime] | None = None,
) -> list[SynthMessage]:
    """The geo SMS the matcher would send for ``data.visits`` (one per promotion, user and local
    day), once the stores and promotions have database ids; outcomes drawn from the seed.
    ``opted_out`` (user id → when) silences a recipient from that instant on."""
    state = MatchState(resolution=resolution, ttl=timedelta(minutes=30))
    for store, sid, store_cells in zip(data.stores, store_ids, cells, strict=True):
        entry = StoreEntry(lat=store.lat, lng=store.lng, time_zone=store.time_zone,
                           geofence=store.geofence, cells=store_cells)
        state.apply_catalog(CatalogRecord(kind="store", id=sid, tenant_id=tenant_id, active=True,
                                          store=entry))
    for promo, pid in zip(data.promotions, promotion_ids, strict=True):
        entry_p = PromotionEntry(store_id=store_ids[promo.store], body=promo.body,
                                 interests=promo.interests, valid_from=None, valid_until=None)
        state.apply_catalog(CatalogRecord(kind="promotion", id=pid, tenant_id=tenant_id,
                                          active=True, promotion=entry_p))
    for r in data.recipients:
        state.apply_profile(ProfileRecord(
            tenant_id=tenant_id, user_id=r.user_id, phone=r.phone, time_zone=r.time_zone,
            interests=r.interests, consent=r.consent_at is not None, opted_out=r.opted_out_at is not None,
        ))
    return _outcomes(data, state, tenant_id, opted_out or {})


def _outcomes(
    data: SynthData, state: MatchState, tenant_id: int, opted_out: Mapping[str, datetime]
) -> list[SynthMessage]:
    rng = random.Random(data.params.seed + 1)
    seen: set[str] = set()
    out: list[SynthMessage] = []
    for v in data.visits:
        if v.user_id in opted_out and opted_out[v.user_id] <= v.ts:
            continue
        event = VisitEvent(event_id=v.event_id, lat=v.lat, lng=v.lng, accuracy_m=v.accuracy_m, ts=v.ts)
        record = VisitRecord(tenant_id=tenant_id, user_id=v.user_id, events=[event],
                             received_at=v.received_at)
        for req in state.match(record).requests:
            if req.message_key in seen or req.promotion_id is None:
                continue
            seen.add(req.message_key)
            st = rng.choices([s for s, _ in _STATES], weights=[w for _, w in _STATES])[0]
            sent = v.received_at + timedelta(seconds=rng.uniform(0.5, 3))
            out.append(SynthMessage(
                message_key=req.message_key, user_id=v.user_id, phone=req.phone, body=req.body,
                promotion_id=req.promotion_id, state=st, created_at=sent,
                delivered_at=sent + timedelta(seconds=rng.uniform(2, 20)) if st == "delivered" else None,
            ))
    return out
