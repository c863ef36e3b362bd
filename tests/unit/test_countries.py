"""Numbers to countries, for routes that serve some countries only."""

from __future__ import annotations

import pytest

from sender.countries import country_of


@pytest.mark.parametrize(("phone", "country"), [
    ("+13125550100", "US"), ("+14165550100", "CA"), ("+18765550100", "JM"),  # +1: the area code
    ("+18085550100", "US"), ("+442071234567", "GB"), ("+74951234567", "RU"),
    ("+77012345678", "KZ"), ("+81312345678", "JP"), ("+4915100000001", "DE"),
    ("+8816123456", None),  # +881: a satellite network, no country
    ("+999123456", None),
])
def test_each_number_has_its_country(phone: str, country: str | None) -> None:
    assert country_of(phone) == country
