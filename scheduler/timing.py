"""Wall clocks and instants: cron fires in a zone, one-shot fires, per-zone waves. Pure.

A wall time (naive ``datetime``) becomes an instant with :func:`localize`:
- a wall time skipped by a DST change (02:30 on a spring-forward night) fires at the same
  offset from the change, i.e. shifted forward by the gap (02:30 EST = 03:30 EDT);
- a wall time that happens twice (01:30 on a fall-back night) fires once, at its first
  occurrence.
Cron expressions are evaluated on wall times (croniter, naive), so "09:00 daily" stays 09:00
local across DST changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from hexcast.core.errors import InvalidInput

__all__ = ["localize", "next_cron_wall", "next_fire", "validate_cron", "wall_clock"]

_MAX_STEPS = 10_000
_DST_SLACK = timedelta(hours=3)  # larger than any DST shift


def validate_cron(expr: str) -> str:
    """A 5-field cron expression, or ValueError."""
    fields = expr.split()
    if len(fields) != 5 or not croniter.is_valid(expr):
        raise ValueError(f"invalid cron expression {expr!r} (use 5 fields like '0 9 * * *')")
    try:
        croniter(expr, datetime(2026, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron expression {expr!r} never fires") from None
    return " ".join(fields)


def localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``wall`` in ``zone`` (skipped → shifted forward; repeated → first)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def wall_clock(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall time in ``zone`` at ``instant``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def next_cron_wall(expr: str, after_wall: datetime) -> datetime:
    """The first wall time of ``expr`` strictly after ``after_wall``."""
    nxt: datetime = croniter(expr, after_wall).get_next(datetime)
    return nxt


def next_fire(expr: str, zone: ZoneInfo, after: datetime) -> tuple[datetime, datetime]:
    """(wall time, instant) of the first fire of ``expr`` in ``zone`` strictly after ``after``.

    Wall times that map to the same instant (a skipped hour shifted onto an existing one) fire
    once. Raises InvalidInput if the expression never fires (e.g. 30 February).
    """
    if after.tzinfo is None:
        raise InvalidInput("next_fire needs an aware instant", field="after")
    start = wall_clock(after, zone) - _DST_SLACK
    it = croniter(expr, start)
    best: tuple[datetime, datetime] | None = None
    for _ in range(_MAX_STEPS):
        wall: datetime = it.get_next(datetime)
        instant = localize(wall, zone)
        if instant > after and (best is None or instant < best[1]):
            best = (wall, instant)
        if best is not None and wall > best[0] + _DST_SLACK:
            return best
    if best is None:
        raise InvalidInput(f"cron expression {expr!r} never fires", field="cron")
    return best
