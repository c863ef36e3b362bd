"""What one batch did: counts for logs and the live view, and the messages that failed for good."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from sender.repo import MessageRow

__all__ = ["Outcome"]


@dataclass(slots=True)
class Outcome:
    """Counts of what one batch did, for logs and the live view; ``dead`` = keys for the DLQ."""

    accepted: int = 0
    duplicates: int = 0
    expired: int = 0
    failed: int = 0
    unknown: int = 0
    suppressed: int = 0
    deferred: int = 0
    rate_limited: int = 0
    dead: dict[str, str] = field(default_factory=dict)  # message key → why it failed for good

    def kill(self, rows: Sequence[MessageRow], why: str) -> None:
        """``rows`` failed for good because of ``why``: they belong in the dead letters."""
        self.dead.update((r.message_key, why) for r in rows)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "dead"}

    @classmethod
    def merged(cls, outcomes: Sequence[Outcome]) -> Outcome:
        """One outcome adding up several (the slices of one batch)."""
        total = cls()
        for one in outcomes:
            for name, value in one.as_dict().items():
                setattr(total, name, getattr(total, name) + value)
            total.dead.update(one.dead)
        return total
