"""Which country a number belongs to, for routes that serve some countries only. Pure.

The country calling code decides, from phonenumbers' table. Where several countries share one:
North America (+1) is decided by the area code (one parse per area code, cached, so a
5-million-recipient US run costs a dict probe per message); the other shared codes (+7, +44,
+47, +61...) by parsing the number (cached), and a number phonenumbers cannot place belongs to
the code's main country."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers.data import _COUNTRY_CODE_TO_REGION_CODE

__all__ = ["country_of"]

_CALLING = _COUNTRY_CODE_TO_REGION_CODE


def country_of(phone: str) -> str | None:
    """The ISO 3166 alpha-2 country of an E.164 number, or None when it has none."""
    for n in (1, 2, 3):
        regions = _CALLING.get(int(phone[1:1 + n])) if phone[1:1 + n].isdigit() else None
        if regions is not None:
            if len(regions) == 1:
                return _country(regions[0])
            if n == 1:  # North America: the area code decides
                return _parsed(phone[:5] + "5550100") or _country(regions[0])
            return _parsed(phone) or _country(regions[0])
    return None


def _country(region: str) -> str | None:
    return None if region == "001" else region  # 001: non-geographic (satellite, global)


@lru_cache(maxsize=65536)
def _parsed(phone: str) -> str | None:
    """The region phonenumbers gives a number, None if it cannot place it."""
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(number)
    return _country(region) if region else None
