"""Number pools (sticky senders): the pick is stable, stays in the pool and spreads evenly; a
route's pool is validated where the route is read; and every HTTP adapter sends each message
from its recipient's number, cutting batch requests by sender."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sender.providers.base import Outgoing
from sender.providers.senders import pick_sender, pool_index
from sender.routes_file import RouteEntry
from tests.unit.providercapture import KINDS, SENDER_FIELD, captured, route

POOL = ["+13125550101", "+13125550102", "+13125550103", "+13125550104"]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

phones = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
pools = st.lists(st.from_regex(r"\+1[0-9]{10}", fullmatch=True), min_size=1, max_size=50,
                 unique=True)


@given(to=phones, pool=pools)
def test_a_recipient_always_gets_the_same_number_of_the_pool(to: str, pool: list[str]) -> None:
    spec = route("twilio", sender_id=None, sender_pool=pool)
    picked = pick_sender(spec, to)
    assert picked in pool
    assert pick_sender(spec.model_copy(), to) == picked
    assert pick_sender(spec, to.removeprefix("+")) == picked  # only the digits count


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**64), st.sampled_from(["+1", "+44", "+49", "+861"]))
def test_recipients_are_spread_evenly_over_the_pool(seed: int, prefix: str) -> None:
    """10,000 numbers drawn at random (Hypothesis draws the seed and the country code): each of
    4 numbers gets 20-30 % of them."""
    rng = random.Random(seed)
    recipients = [f"{prefix}{rng.randrange(10**9, 10**10)}" for _ in range(10_000)]
    spec = route("twilio", sender_id=None, sender_pool=POOL)
    shares = Counter(pick_sender(spec, to) for to in recipients)
    assert set(shares) == set(POOL)
    assert all(0.20 <= n / len(recipients) <= 0.30 for n in shares.values())


@given(to=phones, size=st.integers(1, 999), added=st.integers(1, 50))
def test_numbers_appended_to_a_pool_only_take_recipients(to: str, size: int, added: int) -> None:
    before, after = pool_index(to, size), pool_index(to, size + added)
    assert after == before or after >= size


def test_a_route_without_pool_sends_from_its_sender_id_or_lets_the_service_choose() -> None:
    assert pick_sender(route("twilio"), "+13125550199") == "+15005550006"
    service = route("twilio", sender_id=None, messaging_service="MG" + "c" * 32)
    assert pick_sender(service, "+13125550199") is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sender_pool": POOL}, "route twilio-1: give sender_id or sender_pool, not both"),
        ({"sender_id": None, "sender_pool": [*POOL, POOL[0]]}, "sender_pool lists +13125550101 twice"),
        ({"sender_id": None, "sender_pool": []}, "sender_pool"),
        ({"sender_id": None, "sender_pool": ["+0123456"]}, "sender_pool.0"),
        ({"sender_id": None, "sender_pool": ["Brand-Name!"]}, "sender_pool.0"),
        ({"sender_id": None, "sender_pool": ["TwelveLetter"]}, "sender_pool.0"),
        ({"sender_id": None, "sender_pool": [f"+1312555{n:04d}" for n in range(1001)]}, "sender_pool"),
    ],
)
def test_a_bad_pool_is_refused_naming_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("+", r"\+")):
        route("twilio", **changes)


@pytest.mark.parametrize("kind", KINDS)
def test_a_pool_counts_as_the_sender_a_route_needs(kind: str) -> None:
    assert route(kind, sender_id=None, sender_pool=["Hexcast", "+13125550101"]).sender_pool
    with pytest.raises(ValidationError, match="needs sender_id or messaging_service"):
        route(kind, sender_id=None)


def test_the_routes_file_takes_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINCH_TOKEN", "tok")
    entry = {"name": "sinch-us", "kind": "sinch", "account": "plan1", "token": {"env": "SINCH_TOKEN"},
             "sender_pool": POOL, "validity_s": 600}
    spec = RouteEntry.model_validate(entry).spec()
    assert (spec.sender_pool, spec.sender_id, spec.validity_s) == (POOL, None, 600)
    with pytest.raises(ValidationError, match="not both"):
        RouteEntry.model_validate({**entry, "sender_id": "+13125550100"}).spec()


def spread(pool: list[str], n: int = 2) -> list[str]:
    """``n`` recipients whose numbers in ``pool`` differ."""
    found: dict[int, str] = {}
    for i in range(1000):
        to = f"+1773555{i:04d}"
        found.setdefault(pool_index(to, len(pool)), to)
        if len(found) == n:
            return list(found.values())
    raise AssertionError("no recipients on different numbers")


@pytest.mark.parametrize("kind", KINDS)
async def test_each_message_comes_from_its_recipients_number(kind: str) -> None:
    spec = route(kind, sender_id=None, sender_pool=POOL)
    first, second = spread(POOL)
    messages = [Outgoing("a", first, "same text"), Outgoing("b", second, "same text"),
                Outgoing("c", first, "same text")]
    requests = await captured(spec, messages, lambda: NOW)
    field = SENDER_FIELD[kind]
    expected = {to: pick_sender(spec, to) for to in (first, second)}
    assert expected[first] != expected[second]
    if kind in ("plivo", "sinch"):  # batch APIs: one request per sender (and per repeat of a number)
        senders = [request[field] for request in requests]
        assert set(senders) == set(expected.values())
        for request in requests:
            numbers = request["to"] if kind == "sinch" else [f"+{n}" for n in request["dst"].split("<")]
            assert {expected[n] for n in numbers} == {request[field]}
        return
    sent = [request[field] for request in requests]
    digits = kind == "vonage"  # Vonage writes numbers without the '+'
    assert sent == [(expected[m.to] or "").removeprefix("+" if digits else "") for m in messages]
