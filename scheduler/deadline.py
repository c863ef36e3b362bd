"""A campaign's deadline as an instant per wave, and what the cut-off means for a wave. Pure.

The deadline is a wall time: in the campaign's zone (fixed mode) or in each recipient's own
zone (recipient_local: one instant per zone, "midnight in each recipient's zone"). It becomes
an instant as every wall time here does (:func:`scheduler.timing.localize`): a wall time a
spring-forward night skips is shifted forward by the gap, one a fall-back night repeats is
taken at its first occurrence (the earlier instant: a cut-off errs early, never late).

With ``on_deadline = "expire"`` (the default) the instant is a hard cut-off: each chunk's
messages carry it as their ``expires_at`` (the sender expires them then with reason
``deadline`` and tells providers so), and the scheduler releases nothing of a wave past it.
``send_late`` keeps sending after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from scheduler.timing import localize

if TYPE_CHECKING:
    from scheduler.service import Campaign

__all__ = ["EXPIRE", "SEND_LATE", "chunk_expiry", "cut_off", "wave_deadline"]

EXPIRE, SEND_LATE = "expire", "send_late"


def wave_deadline(c: Campaign, zone: str | None) -> datetime | None:
    """The deadline instant (UTC) of ``c``'s wave for recipients in ``zone``: the campaign's
    zone in fixed mode (``zone`` is ignored), ``zone`` in recipient_local mode."""
    if c.deadline is None:
        return None
    return localize(c.deadline, ZoneInfo(zone if c.local and zone else c.time_zone))


def chunk_expiry(c: Campaign, deadline_at: datetime | None) -> datetime | None:
    """The ``expires_at`` a chunk of a wave with ``deadline_at`` gives its messages."""
    return deadline_at if c.on_deadline == EXPIRE else None


def cut_off(c: Campaign, deadline_at: datetime | None, now: datetime) -> bool:
    """Whether a wave with ``deadline_at`` releases nothing more at ``now``."""
    return c.on_deadline == EXPIRE and deadline_at is not None and now >= deadline_at
