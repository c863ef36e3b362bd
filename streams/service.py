"""Pure logic of visit ingestion: group a posted batch into one record per user."""

from __future__ import annotations

from datetime import datetime

from streams.models import VisitEvent, VisitIn, VisitRecord

__all__ = ["group_visits", "visit_key"]


def visit_key(tenant_id: int, user_id: str) -> str:
    """Topic key of ``visits``: all of a user's events land on one partition, in order."""
    return f"{tenant_id}:{user_id}"


def group_visits(
    tenant_id: int, events: list[VisitIn], *, received_at: datetime
) -> list[VisitRecord]:
    """One record per user, events in timestamp order (duplicates by event_id dropped)."""
    by_user: dict[str, dict[str, VisitEvent]] = {}
    for event in events:
        seen = by_user.setdefault(event.user_id, {})
        seen.setdefault(
            event.event_id,
            VisitEvent(
                event_id=event.event_id, lat=event.lat, lng=event.lng,
                accuracy_m=event.accuracy_m, ts=event.ts,
            ),
        )
    return [
        VisitRecord(
            tenant_id=tenant_id, user_id=user,
            events=sorted(found.values(), key=lambda e: e.ts), received_at=received_at,
        )
        for user, found in by_user.items()
    ]
