"""Per-user presence for the matcher: entry and dwell triggers, duplicates and reordering. Pure.

A *stay* is one user's continuous presence in one promotion's zone (its store's fence, or
within ``nearby_m`` of it): in-zone events no more than the promotion's ``max_gap_minutes``
apart. An entry promotion fires on the first event of a stay at which it applies; a dwell
promotion once the stay has lasted ``dwell_minutes`` (two in-zone events at least that far
apart, every gap within the max gap). Each stay fires a promotion at most once. Events at or
before the user's last seen event (same ``event_id``, or an older timestamp) are ignored, so
redelivered and reordered events never fire twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["Presence", "Stay", "UserPresence"]


Stay = tuple[datetime, datetime, bool]
"""A stay: (start, last in-zone event, fired)."""


@dataclass(slots=True)
class UserPresence:
    """One user's watermark and open stays (promotion id → :data:`Stay`).

    A stay is a plain tuple of datetimes and a flag rather than an object: the cyclic garbage
    collector stops tracking such a tuple after it first sees it, and a dict that holds only
    such tuples after a full collection. A matcher holds several stays for each user it has
    seen (one per promotion of the store the user is at); as objects they were most of what
    every full collection walked (1.3 s with 80,000 users, see BENCHMARKS.md), and the event
    loop waits for each collection.
    """

    last_ts: datetime | None = None
    last_ids: tuple[str, ...] = ()  # the events seen at ``last_ts`` (a tuple, for the same reason)
    stays: dict[int, Stay] = field(default_factory=dict)

    def accept(self, event_id: str, ts: datetime) -> bool:
        """False for an event already seen or older than the last one seen."""
        if self.last_ts is not None:
            if ts < self.last_ts or (ts == self.last_ts and event_id in self.last_ids):
                return False
            if ts == self.last_ts:
                self.last_ids += (event_id,)
                return True
        self.last_ts = ts
        self.last_ids = (event_id,)
        return True

    def step(
        self, promotion_id: int, ts: datetime, *, dwell: timedelta | None, max_gap: timedelta
    ) -> bool:
        """Record an in-zone event for a promotion; True when the promotion fires now."""
        stay = self.stays.get(promotion_id)
        if stay is None or ts - stay[1] > max_gap:
            start, fired = ts, False
        else:
            start, fired = stay[0], stay[2]
        fires = not fired and (dwell is None or ts - start >= dwell)
        self.stays[promotion_id] = (start, ts, fired or fires)
        return fires

    def leave_except(self, keep: Iterable[int]) -> None:
        """End the stays of every promotion whose zone the user is not in now."""
        if self.stays:
            kept = set(keep)
            for promotion_id in [p for p in self.stays if p not in kept]:
                del self.stays[promotion_id]


class Presence:
    """Every user's presence, keyed ``<tenant>:<user>``; lives in one matcher's memory."""

    def __init__(self) -> None:
        self._users: dict[str, UserPresence] = {}

    def __len__(self) -> int:
        return len(self._users)

    def user(self, key: str) -> UserPresence:
        found = self._users.get(key)
        if found is None:
            found = self._users[key] = UserPresence()
        return found

    def forget(self, key: str) -> None:
        self._users.pop(key, None)

    def prune(self, before: datetime) -> int:
        """Forget users whose last event is older than ``before``; how many were dropped."""
        old = [k for k, u in self._users.items() if u.last_ts is None or u.last_ts < before]
        for key in old:
            del self._users[key]
        return len(old)
