"""Quiet hours in the recipient's local time. Pure logic, no I/O.

A recipient may have several zones (profile zone, the zones of the number's area code via
``phonenumbers``, the last known location's zone): a time is allowed only when it is inside the
window in every one of them, so the strictest zone wins. The window is 08:00–21:00 local, or
the stricter 08:00–20:00 for numbers whose area code lies in a state with a stricter rule
(the table below: Florida and Oklahoma). A tenant may narrow it with its own window
(``sender.tenant_rules``): the hours both allow apply, never more than the law's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone
from phonenumbers import tzdata as pn_tzdata

__all__ = ["DEFAULT_WINDOW", "NEVER", "STRICT_AREA_CODES", "STRICT_WINDOW", "Window", "is_allowed",
           "narrowed", "next_allowed", "primary_zone", "verdicts", "window_for", "zones_for"]


@dataclass(frozen=True, slots=True)
class Window:
    start: time
    end: time

    def contains(self, local: time) -> bool:
        return self.start <= local < self.end


DEFAULT_WINDOW = Window(time(8), time(21))
STRICT_WINDOW = Window(time(8), time(20))
#: Area codes of states whose telemarketing rules end the day at 20:00 (FL, OK).
STRICT_AREA_CODES = frozenset({
    "239", "305", "321", "324", "352", "386", "407", "448", "561", "645", "656", "689", "727",
    "728", "754", "772", "786", "813", "850", "863", "904", "941", "954",  # Florida
    "405", "539", "572", "580", "918",  # Oklahoma
})


def window_for(phone: str) -> Window:
    """The allowed window for a number: stricter in the listed states."""
    if phone.startswith("+1") and phone[2:5] in STRICT_AREA_CODES:
        return STRICT_WINDOW
    return DEFAULT_WINDOW


def narrowed(legal: Window, tenant: Window | None) -> Window | None:
    """The hours both the law and the tenant allow (a tenant's window narrows the legal one,
    never widens it; None: the legal window). None when they do not overlap: never allowed."""
    if tenant is None:
        return legal
    start, end = max(legal.start, tenant.start), min(legal.end, tenant.end)
    return Window(start, end) if start < end else None


@lru_cache(maxsize=1024)
def _zone(name: str | None) -> ZoneInfo | None:
    """The zone of a name (kept: ZoneInfo's own cache is weak, so zones were re-read from disk
    for every recipient); None for unknown names."""
    if not name or name.startswith("Etc/Unknown"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


#: phonenumbers' own prefix table (digits of the E.164 number → zone names) and its longest key.
_TZ: dict[str, tuple[str, ...]] = pn_tzdata.TIMEZONE_DATA
_TZ_LONGEST: int = pn_tzdata.TIMEZONE_LONGEST_PREFIX


def _number_zones(phone: str) -> tuple[str, ...]:
    """Zones of a number. A North American number is looked up in phonenumbers' prefix table
    by its digits, a few dict probes: the longest prefix with an entry below the country code
    is what ``time_zones_for_number`` returns for a valid geographic number (for a Caribbean
    mobile, which phonenumbers calls non-geographic, it is the island's zone rather than every
    NANP zone). Other numbers, and North American ones without an area entry, are validated
    (country-level zones for non-geographic numbers, none for invalid ones) and cached."""
    if phone.startswith("+1"):
        digits = phone[1:1 + _TZ_LONGEST]
        for n in range(len(digits), 1, -1):
            names = _TZ.get(digits[:n])
            if names is not None:
                return names
        return _validated_zones(phone[:8].ljust(12, "0"))  # area code and exchange decide
    return _validated_zones(phone)


@lru_cache(maxsize=4096)
def _validated_zones(number: str) -> tuple[str, ...]:
    with contextlib.suppress(phonenumbers.NumberParseException):
        return tuple(pn_timezone.time_zones_for_number(phonenumbers.parse(number)))
    return ()


def zones_for(phone: str, *, profile_zone: str | None = None,
              location_zone: str | None = None) -> list[ZoneInfo]:
    """Every zone the recipient may be in; UTC when nothing is known."""
    return list(_zones(profile_zone, location_zone, _number_zones(phone)))


def primary_zone(phone: str, profile_zone: str | None = None) -> ZoneInfo:
    """The first of ``zones_for``: the profile zone when it names one, without reading the
    number's zones."""
    return _zone(profile_zone) or zones_for(phone)[0]


@lru_cache(maxsize=4096)
def _zones(profile_zone: str | None, location_zone: str | None, number_zones: tuple[str, ...]
           ) -> tuple[ZoneInfo, ...]:
    """Keyed by the zone names (a few hundred combinations), not by the number."""
    names: list[str | None] = [profile_zone, location_zone, *number_zones]
    zones = {z.key: z for z in map(_zone, names) if z is not None}
    return tuple(zones.values()) or (ZoneInfo("UTC"),)


def is_allowed(at: datetime, zones: Iterable[ZoneInfo], window: Window) -> bool:
    return all(window.contains(at.astimezone(z).time()) for z in zones)


def next_allowed(at: datetime, zones: list[ZoneInfo], window: Window,
                 *, horizon_days: int = 3) -> datetime | None:
    """The earliest instant ≥ ``at`` allowed in every zone; None if none within the horizon."""
    if is_allowed(at, zones, window):
        return at
    candidates = []
    for zone in zones:
        local_day = at.astimezone(zone).date()
        for offset in range(horizon_days + 1):
            start = datetime.combine(local_day + timedelta(days=offset), window.start, zone)
            candidates.append(start.astimezone(UTC))
    for candidate in sorted(c for c in candidates if c > at):
        if is_allowed(candidate, zones, window):
            return candidate
    return None


#: A verdict meaning "no allowed instant within the horizon".
NEVER = datetime.max.replace(tzinfo=UTC)


def verdicts(at: datetime, recipients: Sequence[tuple[str, str | None]], *,
             tenant: Window | None = None) -> list[datetime | None]:
    """For each (phone, profile zone): None if ``at`` is allowed, else the next allowed instant
    (``NEVER`` if none), in the number's legal window narrowed by ``tenant``'s (see
    :func:`narrowed`). Recipients sharing zones and window are computed once."""
    memo: dict[tuple[tuple[str, ...], Window | None], datetime | None] = {}
    out: list[datetime | None] = []
    for phone, profile_zone in recipients:
        zones = zones_for(phone, profile_zone=profile_zone)
        window = narrowed(window_for(phone), tenant)
        key = (tuple(z.key for z in zones), window)
        if key not in memo:
            found = next_allowed(at, zones, window) if window is not None else None
            memo[key] = None if found == at else (found or NEVER)
        out.append(memo[key])
    return out
