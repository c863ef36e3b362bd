"""Times from outside and times we answer: plausible instants in, offsets (or wall times) out.

- :data:`PastInstant`: a client-given instant of something that already happened (consent
  given, a last visit). More than :data:`MAX_AHEAD` in the future (year 4810, 9999) is a
  mistake, refused with a 422 naming the field; before :data:`EARLIEST` too (and a year-1
  instant with an offset once failed in the driver, converting to UTC).
- :data:`WallTime`: a naive wall-clock time in a zone named beside it (``time_zone``). Its
  JSON schema is a pattern without an offset, never ``date-time`` (RFC 3339 requires one).
  Every other datetime the API answers is an instant carrying an offset (``AwareDatetime``).
- :data:`WallClock`: a time of day on the local clock (opening hours, quiet hours): an offset
  is refused (it once reached a comparison with naive times: a 500), and the schema is a
  pattern, not ``time`` (RFC 3339's full-time has an offset).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from pydantic import AfterValidator, NaiveDatetime, WithJsonSchema

__all__ = ["EARLIEST", "MAX_AHEAD", "PastInstant", "WallClock", "WallTime", "check_past_instant"]

MAX_AHEAD = timedelta(days=1)
"""How far ahead of our clock a past instant may be (client clocks and zones run ahead)."""
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def check_past_instant(value: datetime) -> datetime:
    """``value`` itself, or ValueError if it is implausible for something that happened.
    A naive value is read as UTC (as the driver stores it in a ``timestamptz``)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if aware > datetime.now(UTC) + MAX_AHEAD:
        raise ValueError(f"{value.isoformat()} is more than a day in the future")
    if aware < EARLIEST:
        raise ValueError(f"{value.isoformat()} is before {EARLIEST.year}")
    return value


PastInstant = Annotated[datetime, AfterValidator(check_past_instant)]
"""An instant that already happened: at most a day ahead, not before 1970."""

WallTime = Annotated[
    NaiveDatetime,
    WithJsonSchema({
        "type": "string",
        "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$",
        "description": "Wall-clock time without an offset, in the zone named beside it",
    }),
]
"""A wall-clock time (no offset) in a zone given next to it; only ever in answers."""


def _no_offset(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a local wall-clock time, without an offset (e.g. 21:00)")
    return value


WallClock = Annotated[
    time,
    AfterValidator(_no_offset),
    WithJsonSchema({
        "type": "string",
        "pattern": r"^\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$",
        "description": "Local wall-clock time of day, without an offset",
    }),
]
"""A time of day on a local clock (the zone is the store's, the recipient's...)."""
