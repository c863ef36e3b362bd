"""Pure matching logic: visits → send requests, against an in-memory catalog and profiles."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter

from sender.keys import geo_key
from sender.models import SendRequest
from streams.models import VisitEvent, VisitRecord
from targeting.geofence import Geofence, fence_geometry
from targeting.index import CellIndex
from targeting.models import CatalogRecord, ProfileRecord, PromotionEntry
from targeting.service import interest_match

__all__ = ["MatchResult", "MatchState"]

_FENCE = TypeAdapter(Geofence)


@dataclass(frozen=True, slots=True)
class _Store:
    tenant_id: int
    zone: ZoneInfo
    active: bool


@dataclass(frozen=True, slots=True)
class _Promotion:
    id: int
    tenant_id: int
    entry: PromotionEntry

    def valid_on(self, day: date) -> bool:
        e = self.entry
        return (e.valid_from is None or e.valid_from <= day) and (
            e.valid_until is None or day <= e.valid_until
        )


@dataclass(slots=True)
class MatchResult:
    requests: list[SendRequest] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


class MatchState:
    """The matcher's view of the world, rebuilt from the ``catalog`` and ``profiles`` topics."""

    def __init__(self, *, resolution: int, ttl: timedelta) -> None:
        self.index = CellIndex(resolution)
        self.ttl = ttl
        self._stores: dict[int, _Store] = {}
        self._promotions: dict[int, dict[int, _Promotion]] = {}
        self._profiles: dict[str, ProfileRecord] = {}

    def apply_catalog(self, record: CatalogRecord) -> None:
        if record.kind == "store" and record.store is not None:
            s = record.store
            self._stores[record.id] = _Store(record.tenant_id, ZoneInfo(s.time_zone), record.active)
            if record.active:
                geometry = fence_geometry(_FENCE.validate_python(s.geofence), lat=s.lat, lng=s.lng)
                self.index.upsert(record.id, record.tenant_id, geometry, s.cells)
            else:
                self.index.remove(record.id)
        elif record.kind == "promotion" and record.promotion is not None:
            for promos in self._promotions.values():
                promos.pop(record.id, None)
            if record.active:
                promo = _Promotion(record.id, record.tenant_id, record.promotion)
                self._promotions.setdefault(record.promotion.store_id, {})[record.id] = promo

    def apply_profile(self, record: ProfileRecord) -> None:
        self._profiles[record.key] = record

    def match(self, record: VisitRecord, *, max_per_visit: int = 1) -> MatchResult:
        """Send requests for a user's events: the best promotions of the stores they are in."""
        result = MatchResult()
        profile = self._profiles.get(f"{record.tenant_id}:{record.user_id}")
        seen: set[str] = set()
        for event in record.events:
            result.counts["visits"] += 1
            chosen = self._best(record, event, profile, result.counts)[:max_per_visit]
            for promo, local_day in chosen:
                key = geo_key(tenant_id=record.tenant_id, promotion_id=promo.id,
                              user_id=record.user_id, local_date=local_day)
                if key in seen or profile is None:
                    continue
                seen.add(key)
                result.counts["matched"] += 1
                result.requests.append(SendRequest(
                    message_key=key, tenant_id=record.tenant_id, user_id=record.user_id,
                    phone=profile.phone, body=promo.entry.body, promotion_id=promo.id,
                    expires_at=event.ts + self.ttl,
                ))
        return result

    def _best(
        self, record: VisitRecord, event: VisitEvent, profile: ProfileRecord | None,
        counts: Counter[str],
    ) -> list[tuple[_Promotion, date]]:
        stores = [e for e in self.index.containing(event.lat, event.lng)
                  if e.tenant_id == record.tenant_id]
        if not stores:
            counts["no_geofence"] += 1
            return []
        if profile is None or not profile.consent or profile.opted_out:
            counts["no_profile" if profile is None else "no_consent"] += 1
            return []
        ranked: list[tuple[int, int, _Promotion, date]] = []
        for entry in stores:
            store = self._stores.get(entry.store_id)
            if store is None or not store.active:
                continue
            local_day = _local_date(event.ts, store.zone)
            for promo in self._promotions.get(entry.store_id, {}).values():
                if not promo.valid_on(local_day):
                    continue
                if not interest_match(promo.entry.interests, profile.interests):
                    continue
                score = _score(promo.entry.interests, profile.interests)
                ranked.append((-score, promo.id, promo, local_day))
        if not ranked:
            counts["no_interest"] += 1
        ranked.sort(key=lambda r: (r[0], r[1]))
        return [(r[2], r[3]) for r in ranked]


def _local_date(ts: datetime, zone: ZoneInfo) -> date:
    return ts.astimezone(zone).date()


def _score(wanted: list[str], have: list[str]) -> int:
    """How many of the promotion's interests the user shares (at any depth)."""
    return sum(1 for w in wanted if interest_match([w], have))
