"""Pure logic of the catalog: geofences to cells, rows to records and public schemas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from targeting.geofence import cover_cells, fence_geometry
from targeting.models import (
    CatalogRecord,
    ProfileRecord,
    PromotionCreate,
    PromotionEntry,
    PromotionPublic,
    RecipientPublic,
    StoreCreate,
    StoreEntry,
    StorePublic,
)

__all__ = [
    "InterestFit",
    "Wanted",
    "fence_cells",
    "fit_score",
    "interest_match",
    "policy_columns",
    "profile_record",
    "promotion_public",
    "promotion_record",
    "recipient_public",
    "store_public",
    "store_record",
]


def fence_cells(store: StoreCreate, *, resolution: int) -> list[str]:
    """Validate the store's geofence and cover it with compacted H3 cells."""
    geometry = fence_geometry(store.geofence, lat=store.lat, lng=store.lng)
    return cover_cells(geometry, resolution=resolution)


def store_public(row: Any) -> StorePublic:
    return StorePublic(
        id=row["id"], name=row["name"], lat=row["lat"], lng=row["lng"],
        time_zone=row["time_zone"], geofence=row["geofence"], cell_count=len(row["cells"]),
        h3_resolution=row["h3_resolution"], accuracy_max_m=row["accuracy_max_m"],
        active=row["active"], created_at=row["created_at"],
    )


def store_record(row: Any) -> CatalogRecord:
    entry = StoreEntry(
        lat=row["lat"], lng=row["lng"], time_zone=row["time_zone"],
        geofence=row["geofence"], cells=list(row["cells"]), accuracy_max_m=row["accuracy_max_m"],
    )
    return CatalogRecord(
        kind="store", id=row["id"], tenant_id=row["tenant_id"], active=row["active"], store=entry
    )


def policy_columns(body: PromotionCreate) -> dict[str, Any]:
    """A promotion's policy as the promotions table's columns."""
    return {
        "hours_start": body.hours.start if body.hours else None,
        "hours_end": body.hours.end if body.hours else None,
        "weekdays": body.weekdays, "trigger": body.trigger, "dwell_minutes": body.dwell_minutes,
        "max_gap_minutes": body.max_gap_minutes, "nearby_m": body.nearby_m,
        "cooldown_minutes": body.cooldown_minutes, "budget": body.budget,
        "interest_weights": body.interest_weights,
    }


def _policy(row: Any) -> dict[str, Any]:
    hours = None
    if row["hours_start"] is not None:
        hours = {"start": row["hours_start"], "end": row["hours_end"]}
    return {
        "hours": hours, "weekdays": list(row["weekdays"]), "trigger": row["trigger"],
        "dwell_minutes": row["dwell_minutes"], "max_gap_minutes": row["max_gap_minutes"],
        "nearby_m": row["nearby_m"], "cooldown_minutes": row["cooldown_minutes"],
        "budget": row["budget"], "interest_weights": dict(row["interest_weights"]),
    }


def promotion_public(row: Any) -> PromotionPublic:
    return PromotionPublic(
        id=row["id"], store_id=row["store_id"], name=row["name"], body=row["body"],
        interests=list(row["interests"]), valid_from=row["valid_from"],
        valid_until=row["valid_until"], active=row["active"], created_at=row["created_at"],
        **_policy(row),
    )


def promotion_record(row: Any) -> CatalogRecord:
    entry = PromotionEntry(
        store_id=row["store_id"], body=row["body"], interests=list(row["interests"]),
        valid_from=row["valid_from"], valid_until=row["valid_until"], **_policy(row),
    )
    return CatalogRecord(
        kind="promotion", id=row["id"], tenant_id=row["tenant_id"], active=row["active"],
        promotion=entry,
    )


def recipient_public(row: Any) -> RecipientPublic:
    return RecipientPublic(
        id=row["id"], user_id=row["user_id"], phone=row["phone"], time_zone=row["time_zone"],
        interests=list(row["interests"]), consent=row["consent"], opted_out=row["opted_out"],
        created_at=row["created_at"],
    )


def profile_record(row: Any) -> ProfileRecord:
    return ProfileRecord(
        tenant_id=row["tenant_id"], user_id=row["user_id"], phone=row["phone"],
        time_zone=row["time_zone"], interests=list(row["interests"]), consent=row["consent"],
        opted_out=row["opted_out"],
    )


def interest_match(promotion_interests: list[str], user_interests: list[str]) -> bool:
    """True when the promotion targets everyone, or a user interest is an ancestor or equal.

    ``electronics/phones`` matches a user interested in ``electronics`` (and vice versa a
    promotion for ``electronics`` matches a user interested in ``electronics/phones``).
    """
    return fit_score(Wanted.of(promotion_interests, {}), InterestFit.of(user_interests)) > 0


GENERIC_SCORE = 0.5
"""Interest score of a promotion that targets everyone: below any full targeted match."""


@dataclass(frozen=True, slots=True)
class Wanted:
    """A promotion's interests prepared for :func:`fit_score`: each with its weight and its
    ancestors, nearest first."""

    interests: tuple[tuple[str, float, tuple[str, ...]], ...]

    @classmethod
    def of(cls, promotion_interests: list[str], weights: dict[str, float]) -> Wanted:
        return cls(tuple((w, weights.get(w, 1.0), _ancestors(w)) for w in promotion_interests))


@dataclass(frozen=True, slots=True)
class InterestFit:
    """A user's interests prepared for :func:`fit_score`: the interests themselves, and every
    interest with all its ancestors."""

    own: frozenset[str]
    covered: frozenset[str]

    @classmethod
    def of(cls, user_interests: Sequence[str]) -> InterestFit:
        """Shared by every user with the same interests (the matcher asks once per record)."""
        return _interest_fit(tuple(user_interests))


@lru_cache(maxsize=65_536)
def _interest_fit(interests: tuple[str, ...]) -> InterestFit:
    return InterestFit(frozenset(interests),
                       frozenset(a for have in interests for a in (have, *_ancestors(have))))


def _ancestors(interest: str) -> tuple[str, ...]:
    parts = interest.split("/")
    return tuple("/".join(parts[:n]) for n in range(len(parts) - 1, 0, -1))


def fit_score(wanted: Wanted, fit: InterestFit) -> float:
    """How well a user fits a promotion: the best weighted match over its interests, 0 if none.

    A user interest equal to or below the promotion's (``electronics/phones`` for
    ``electronics``) scores the full weight; one above it (``electronics`` for
    ``electronics/phones``) half the weight per level of difference. A promotion without
    interests targets everyone with :data:`GENERIC_SCORE`. Set lookups, not a comparison of
    every pair of interests: the matcher scores each promotion at a store for every visit.
    """
    if not wanted.interests:
        return GENERIC_SCORE
    best = 0.0
    for interest, weight, ancestors in wanted.interests:
        if interest in fit.covered:  # the user's interest is this one or below it
            best = max(best, weight)
            continue
        for levels, ancestor in enumerate(ancestors, 1):
            if ancestor in fit.own:  # the user's interest is above it: half per level
                best = max(best, weight * 0.5**levels)
                break
    return best
