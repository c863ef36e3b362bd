"""Message validity: the seconds a provider may keep trying are the lesser of the route's
``validity_s`` and the message's time left, within the provider's range; each adapter puts them
in its API's field, and leaves the field out when neither is set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sender.providers import plivo, sinch, twilio, vonage
from sender.providers.base import Outgoing
from sender.providers.validity import ValidityRange, validity_s
from tests.unit.providercapture import captured, route

NOW = datetime(2025, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)

RANGES = {"twilio": twilio.VALIDITY, "vonage": vonage.VALIDITY, "plivo": plivo.VALIDITY,
          "sinch": sinch.VALIDITY}


def sent_validity(kind: str, request: dict[str, Any]) -> int | None:
    """The seconds a request gives the provider, read back from its API's field."""
    if kind == "twilio":
        return int(request["ValidityPeriod"]) if "ValidityPeriod" in request else None
    if kind == "vonage":
        return int(request["ttl"]) // 1000 if "ttl" in request else None
    if kind == "plivo":
        found = request.get("message_expiry")
        return None if found is None else int(found)
    if "expire_at" not in request:
        return None
    at = datetime.strptime(request["expire_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round((at - NOW).total_seconds())


@given(route_s=st.none() | st.integers(60, 259_200), left_s=st.none() | st.integers(-100, 10**6),
       low=st.integers(1, 60), span=st.integers(0, 10**6))
def test_the_lesser_limit_within_the_providers_range(
    route_s: int | None, left_s: int | None, low: int, span: int,
) -> None:
    allowed = ValidityRange(low, low + span)
    expires = None if left_s is None else NOW + timedelta(seconds=left_s)
    found = validity_s(route_s, expires, NOW, allowed)
    limits = [s for s in (route_s, left_s) if s is not None]
    if not limits:
        assert found is None
        return
    assert found is not None
    assert allowed.low_s <= found <= allowed.high_s
    assert found == max(allowed.low_s, min(allowed.high_s, *limits))


def test_a_naive_expiry_is_utc_and_part_of_a_second_is_not_given() -> None:
    naive = (NOW + timedelta(seconds=300)).replace(tzinfo=None, microsecond=0)
    assert validity_s(None, naive, NOW, ValidityRange(1, 36_000)) == 299


@pytest.mark.parametrize("kind", sorted(RANGES))
@pytest.mark.parametrize(
    ("route_s", "left_s"),
    [(None, 300), (600, 300), (120, 300), (600, None), (None, 400_000), (None, 2), (None, None)],
)
async def test_each_adapter_sends_the_validity(kind: str, route_s: int | None, left_s: int | None) -> None:
    spec = route(kind, validity_s=route_s)
    expires = None if left_s is None else NOW + timedelta(seconds=left_s)
    [request] = await captured(spec, [Outgoing("k-1", "+13125550100", "code 4711", expires)],
                               lambda: NOW)
    expected = validity_s(route_s, expires, NOW, RANGES[kind])
    assert sent_validity(kind, request) == expected
    limits = [s for s in (route_s, left_s) if s is not None]
    if limits:
        assert expected == RANGES[kind].clamp(min(limits))
    else:
        assert expected is None  # no field: the provider's default


async def test_twilio_sends_an_otps_time_left_as_validity_period() -> None:
    expires = NOW.replace(microsecond=0) + timedelta(minutes=5)
    otp = Outgoing("otp-1", "+13125550100", "Your code is 4711", expires)
    [form] = await captured(route("twilio"), [otp], lambda: NOW)
    assert form["ValidityPeriod"] == "299"  # 4 min 59.75 s left: whole seconds, never more


@pytest.mark.parametrize("kind", ["plivo", "sinch"])
async def test_a_batch_api_cuts_requests_by_expiry(kind: str) -> None:
    soon, later = NOW + timedelta(minutes=5), NOW + timedelta(hours=1)
    messages = [Outgoing("a", "+13125550100", "hi", soon), Outgoing("b", "+13125550101", "hi", later),
                Outgoing("c", "+13125550102", "hi", soon)]
    requests = await captured(route(kind), messages, lambda: NOW)
    numbers = [r["to"] if kind == "sinch" else [f"+{n}" for n in r["dst"].split("<")] for r in requests]
    assert numbers == [["+13125550100", "+13125550102"], ["+13125550101"]]
    assert [sent_validity(kind, r) for r in requests] == [300, 3600]


async def test_telnyx_takes_no_validity_period() -> None:
    [request] = await captured(route("telnyx", validity_s=600),
                               [Outgoing("k", "+13125550100", "hi", NOW + timedelta(minutes=5))],
                               lambda: NOW)
    assert set(request) == {"to", "text", "from"}


@pytest.mark.parametrize("value", [59, 259_201])
def test_a_route_validity_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(ValidationError, match="validity_s"):
        route("twilio", validity_s=value)
