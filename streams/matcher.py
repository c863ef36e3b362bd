"""Pure matching logic: visits → ranked candidate sends, against an in-memory catalog and profiles.

Per event: duplicates/reordering are dropped (:mod:`streams.presence`); the cell index gives
candidate stores and the geometry decides (``CellIndex.containing`` / ``nearby`` check exact
containment and distance); events less accurate than the store's threshold are ignored for it;
a promotion applies if it is valid now in the store's local time (dates, weekdays, daily hours),
the visitor's interests match it (weighted, hierarchical) and its trigger fires (entry or
dwell). Candidates of one event are ranked: in-fence before nearby, then interest score ×
distance decay. Cooldowns, caps and budgets need shared state: :mod:`streams.gate` applies them
to the ranked candidates in one Redis call per record. No I/O here.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from sender import SendRequest, geo_key
from streams.models import VisitEvent, VisitRecord
from streams.nearby import NearIndex
from streams.presence import Presence, UserPresence
from targeting import (
    CatalogRecord,
    CellIndex,
    Geofence,
    InterestFit,
    ProfileRecord,
    PromotionEntry,
    Wanted,
    fence_geometry,
    fit_score,
)

__all__ = ["DECAY_M", "FALLBACKS", "Candidate", "MatchResult", "MatchState", "VisitMatch"]

_FENCE = TypeAdapter(Geofence)
FALLBACKS = 2
"""Candidates kept per visit beyond ``max_per_visit``, for when the gate refuses the best."""
DECAY_M = 250.0
"""Nearby matches score ``exp(-distance / DECAY_M)`` of their interest score."""


@dataclass(frozen=True, slots=True)
class _Store:
    tenant_id: int
    zone: ZoneInfo
    active: bool
    accuracy_max_m: float


@dataclass(frozen=True, slots=True)
class _Promotion:
    id: int
    tenant_id: int
    entry: PromotionEntry
    dwell: timedelta | None
    max_gap: timedelta
    wanted: Wanted
    always: bool  # no dates, weekdays or hours: valid at any time

    @classmethod
    def of(cls, promotion_id: int, tenant_id: int, entry: PromotionEntry) -> _Promotion:
        minutes = entry.dwell_minutes if entry.trigger == "dwell" else None
        return cls(
            promotion_id, tenant_id, entry, None if minutes is None else timedelta(minutes=minutes),
            timedelta(minutes=entry.max_gap_minutes), Wanted.of(entry.interests, entry.interest_weights),
            always=entry.valid_from is None and entry.valid_until is None
            and len(entry.weekdays) == 7 and entry.hours is None,
        )

    def applies_at(self, local: datetime) -> bool:
        """Valid on the local date, on this weekday and within the daily hours."""
        e, day = self.entry, local.date()
        if (e.valid_from is not None and day < e.valid_from) or (
            e.valid_until is not None and day > e.valid_until
        ):
            return False
        if local.isoweekday() not in e.weekdays:
            return False
        return e.hours is None or e.hours.contains(local.time())


@dataclass(frozen=True, slots=True)
class Candidate:
    """One send a trigger asks for; the gate decides whether it may go. Its send request is
    built only for the candidates that go (most are refused or are fallbacks, and building a
    request cost more than the rest of the candidate)."""

    message_key: str
    tenant_id: int
    user_id: str
    phone: str
    body: str
    expires_at: datetime
    promotion_id: int
    store_id: int
    event_id: str
    in_fence: bool
    score: float
    cooldown_s: int
    budget: int | None
    day_start: datetime
    day_end: datetime

    @property
    def request(self) -> SendRequest:
        return SendRequest.model_construct(  # every field is already validated
            message_key=self.message_key, tenant_id=self.tenant_id, user_id=self.user_id,
            phone=self.phone, body=self.body, promotion_id=self.promotion_id,
            campaign_run_id=None, expires_at=self.expires_at, confirmation=False,
        )


_Found = tuple[float, float, _Promotion, datetime]  # distance, score × decay, promotion, local


@dataclass(frozen=True, slots=True)
class VisitMatch:
    """The ranked candidates one event triggered (best first)."""

    event_id: str
    candidates: list[Candidate]


@dataclass(slots=True)
class MatchResult:
    visits: list[VisitMatch] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    max_per_visit: int = 1

    @property
    def requests(self) -> list[SendRequest]:
        """The best ``max_per_visit`` candidates of each visit, ignoring cooldowns/caps/budgets."""
        seen: set[str] = set()
        out: list[SendRequest] = []
        for visit in self.visits:
            for cand in visit.candidates[: self.max_per_visit]:
                if cand.message_key not in seen:
                    seen.add(cand.message_key)
                    out.append(cand.request)
        return out


@lru_cache(maxsize=4096)
def _day_instants(zone: ZoneInfo, day: date) -> tuple[datetime, datetime]:
    """The instants local ``day`` in ``zone`` starts and ends, computed once per zone and day."""
    return (datetime.combine(day, time(), zone),
            datetime.combine(day + timedelta(days=1), time(), zone))


@dataclass(slots=True)
class _Outcome:
    """Why one event did not trigger: the furthest stage any promotion reached."""

    inside: int = 0  # fences the event is in
    accuracy: int = 0
    stores: int = 0  # stores with promotions that were looked at
    stage: int = 0  # 0 none in zone, 1 outside hours, 2 no interest, 3 not triggered

    def reason(self) -> str:
        if self.stage:
            return ("outside_hours", "no_interest", "not_triggered")[self.stage - 1]
        if self.stores and self.accuracy == self.stores:
            return "accuracy"
        return "no_promotion" if self.inside else "no_geofence"


class MatchState:
    """The matcher's view of the world, rebuilt from the ``catalog`` and ``profiles`` topics,
    plus the presence of users seen by this matcher."""

    def __init__(self, *, resolution: int, ttl: timedelta) -> None:
        self.index = CellIndex(resolution)
        self.ttl = ttl
        self.presence = Presence()
        self._stores: dict[int, _Store] = {}
        self._promotions: dict[int, dict[int, _Promotion]] = {}
        self._promo_store: dict[int, int] = {}
        self._near = NearIndex(min(resolution, 8))
        self._profiles: dict[str, ProfileRecord] = {}

    def apply_catalog(self, record: CatalogRecord) -> None:
        if record.kind == "store" and record.store is not None:
            s = record.store
            self._stores[record.id] = _Store(
                record.tenant_id, ZoneInfo(s.time_zone), record.active, s.accuracy_max_m
            )
            if record.active:
                geometry = fence_geometry(_FENCE.validate_python(s.geofence), lat=s.lat, lng=s.lng)
                self.index.upsert(record.id, record.tenant_id, geometry, s.cells)
            else:
                self.index.remove(record.id)
            self._refresh_near(record.id)
        elif record.kind == "promotion":
            self._drop_promotion(record.id)
            if record.active and record.promotion is not None:
                self._add_promotion(record.id, record.tenant_id, record.promotion)

    def _refresh_near(self, store_id: int) -> None:
        """Re-index the store for nearby mode: its largest ``nearby_m``, if any."""
        radius = max((p.entry.nearby_m for p in self._promotions.get(store_id, {}).values()),
                     default=0)
        fence = self.index.get(store_id)
        store = self._stores.get(store_id)
        tenant = store.tenant_id if store is not None else 0
        self._near.put(store_id, tenant, fence.geometry if fence else None, float(radius))

    def _add_promotion(self, promotion_id: int, tenant_id: int, entry: PromotionEntry) -> None:
        promo = _Promotion.of(promotion_id, tenant_id, entry)
        self._promotions.setdefault(entry.store_id, {})[promotion_id] = promo
        self._promo_store[promotion_id] = entry.store_id
        if entry.nearby_m:
            self._refresh_near(entry.store_id)

    def _drop_promotion(self, promotion_id: int) -> None:
        store_id = self._promo_store.pop(promotion_id, None)
        if store_id is None:
            return
        promo = self._promotions[store_id].pop(promotion_id)
        if promo.entry.nearby_m:
            self._refresh_near(store_id)

    def apply_profile(self, record: ProfileRecord) -> None:
        self._profiles[record.key] = record

    def forget_profile(self, key: str) -> None:
        """A deleted recipient (a tombstone on ``profiles``): no profile, no presence."""
        self._profiles.pop(key, None)
        self.presence.forget(key)

    def match(self, record: VisitRecord, *, max_per_visit: int = 1) -> MatchResult:
        """Ranked candidate sends for a user's events, in event order. Each visit keeps its
        best ``max_per_visit + FALLBACKS`` candidates (the gate may refuse the best ones)."""
        result = MatchResult(max_per_visit=max_per_visit)
        counts = result.counts
        counts["visits"] += len(record.events)
        key = f"{record.tenant_id}:{record.user_id}"
        profile = self._profiles.get(key)
        if profile is None or not profile.consent or profile.opted_out:
            counts["no_profile" if profile is None else "no_consent"] += len(record.events)
            return result
        user = self.presence.user(key)
        fit = InterestFit.of(profile.interests)
        for event in record.events:
            if not user.accept(event.event_id, event.ts):
                counts["duplicate"] += 1
                continue
            found, outcome = self._event(record, fit, user, event)
            if found:
                found.sort(key=lambda f: (f[0] > 0, -f[1], f[2].id))
                best = [self._candidate(record, profile, event, promo, d, score, local)
                        for d, score, promo, local in found[: max_per_visit + FALLBACKS]]
                result.visits.append(VisitMatch(event.event_id, best))
                counts["triggered"] += 1
            else:
                counts[outcome.reason()] += 1
        return result

    def _hits(self, tenant_id: int, event: VisitEvent) -> list[tuple[int, float]]:
        """(store, metres outside its fence): stores whose fence holds the event, then stores
        with nearby-mode promotions close enough."""
        inside = [(e.store_id, 0.0) for e in self.index.containing(event.lat, event.lng)
                  if e.tenant_id == tenant_id]
        if len(self._near):
            inside += self._near.near(event.lat, event.lng, tenant_id, {s for s, _ in inside})
        return inside

    def _event(
        self, record: VisitRecord, fit: InterestFit, user: UserPresence, event: VisitEvent,
    ) -> tuple[list[_Found], _Outcome]:
        outcome = _Outcome()
        found: list[_Found] = []
        keep: list[int] = []
        for store_id, distance in self._hits(record.tenant_id, event):
            store = self._stores.get(store_id)
            promos = self._promotions.get(store_id)
            if store is None or not store.active:
                continue
            outcome.inside += distance <= 0
            if not promos:
                continue
            outcome.stores += 1
            if event.accuracy_m > store.accuracy_max_m:
                outcome.accuracy += 1
                keep += promos  # an inaccurate fix neither enters nor leaves
                continue
            local = event.ts.astimezone(store.zone)
            for promo in promos.values():
                if distance > promo.entry.nearby_m:
                    continue
                keep.append(promo.id)  # in its zone: the stay goes on
                score = self._score(fit, user, event, promo, local, outcome)
                if score:
                    decay = 1.0 if distance <= 0 else math.exp(-distance / DECAY_M)
                    found.append((distance, score * decay, promo, local))
        user.leave_except(keep)
        return found, outcome

    @staticmethod
    def _score(
        fit: InterestFit, user: UserPresence, event: VisitEvent, promo: _Promotion,
        local: datetime, outcome: _Outcome,
    ) -> float:
        """The promotion's interest score if it applies now and its trigger fires, else 0."""
        if not (promo.always or promo.applies_at(local)):
            outcome.stage = max(outcome.stage, 1)
            return 0.0
        score = fit_score(promo.wanted, fit)
        if score <= 0:
            outcome.stage = max(outcome.stage, 2)
            return 0.0
        if not user.step(promo.id, event.ts, dwell=promo.dwell, max_gap=promo.max_gap):
            outcome.stage = 3
            return 0.0
        return score

    def _candidate(
        self, record: VisitRecord, profile: ProfileRecord, event: VisitEvent, promo: _Promotion,
        distance: float, score: float, local: datetime,
    ) -> Candidate:
        """``local``: the event's time in the store's zone."""
        e = promo.entry
        day = local.date()
        start, end = _day_instants(self._stores[e.store_id].zone, day)
        key = geo_key(tenant_id=record.tenant_id, promotion_id=promo.id,
                      user_id=record.user_id, local_date=day)
        return Candidate(
            message_key=key, tenant_id=record.tenant_id, user_id=record.user_id,
            phone=profile.phone, body=e.body, expires_at=event.ts + self.ttl,
            promotion_id=promo.id, store_id=e.store_id, event_id=event.event_id,
            in_fence=distance <= 0, score=score, cooldown_s=e.cooldown_minutes * 60,
            budget=e.budget, day_start=start, day_end=end,
        )

