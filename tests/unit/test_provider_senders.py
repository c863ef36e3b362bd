"""Number pools (sticky senders): the pick is stable, stays in the pool and spreads evenly; a
route's pool is validated where the route is read; and every HTTP adapter sends each message
from its recipient's number, cutting batch requests by sender."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sender.models import Lane, MessageState
from sender.providers.base import Outgoing
from sender.providers.senders import pick_sender, pool_index
from sender.repo import MessageRow
from sender.routes_file import RouteEntry
from sender.tenant_rules import TenantRules
from sender.tenant_senders import TenantSenders
from tests.unit.providercapture import KINDS, SENDER_FIELD, captured, route

POOL = ["+13125550101", "+13125550102", "+13125550103", "+13125550104"]
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

phones = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
pools = st.lists(st.from_regex(r"\+1[0-9]{10}", fullmatch=True), min_size=1, max_size=50,
                 unique=True)


def message(number: str) -> Outgoing:
    """A message to ``number`` (what the adapters pick a sender for)."""
    return Outgoing(client_ref="ref", to=number, body="hi")


@given(to=phones, pool=pools)
def test_a_recipient_always_gets_the_same_number_of_the_pool(to: str, pool: list[str]) -> None:
    spec = route("twilio", sender_id=None, sender_pool=pool)
    picked = pick_sender(spec, message(to))
    assert picked in pool
    assert pick_sender(spec.model_copy(), message(to)) == picked
    assert pick_sender(spec, message(to.removeprefix("+"))) == picked  # only the digits count


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**64), st.sampled_from(["+1", "+44", "+49", "+861"]))
def test_recipients_are_spread_evenly_over_the_pool(seed: int, prefix: str) -> None:
    """10,000 numbers drawn at random (Hypothesis draws the seed and the country code): each of
    4 numbers gets 20-30 % of them."""
    rng = random.Random(seed)
    recipients = [f"{prefix}{rng.randrange(10**9, 10**10)}" for _ in range(10_000)]
    spec = route("twilio", sender_id=None, sender_pool=POOL)
    shares = Counter(pick_sender(spec, message(to)) for to in recipients)
    assert set(shares) == set(POOL)
    assert all(0.20 <= n / len(recipients) <= 0.30 for n in shares.values())


@given(to=phones, size=st.integers(1, 999), added=st.integers(1, 50))
def test_numbers_appended_to_a_pool_only_take_recipients(to: str, size: int, added: int) -> None:
    before, after = pool_index(to, size), pool_index(to, size + added)
    assert after == before or after >= size


def test_a_route_without_pool_sends_from_its_sender_id_or_lets_the_service_choose() -> None:
    assert pick_sender(route("twilio"), message("+13125550199")) == "+15005550006"
    service = route("twilio", sender_id=None, messaging_service="MG" + "c" * 32)
    assert pick_sender(service, message("+13125550199")) is None


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
    expected = {to: pick_sender(spec, message(to)) for to in (first, second)}
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


async def test_a_tenants_own_sender_ids_are_picked_per_recipient_and_win_on_its_route() -> None:
    asked: list[set[int]] = []

    async def rules(tenants: Collection[int]) -> dict[int, TenantRules]:
        asked.append(set(tenants))
        return {1: TenantRules(sender_ids=("+13125550001", "ACMEShop"))}

    def row(n: int, tenant: int, phone: str) -> MessageRow:
        return MessageRow(id=n, message_key=f"k{n}", tenant_id=tenant, lane=Lane.BULK,
                          state=MessageState.SENDING, phone=phone, body="hi", client_ref=f"k{n}",
                          expires_at=None, attempts=1)

    phones = [f"+1312555{n:04d}" for n in range(40)]
    rows = [row(n, 1, p) for n, p in enumerate(phones)] + [row(99, 2, phones[0])]
    picked = await TenantSenders(rules).pick(rows)
    assert asked == [{1, 2}]  # one lookup for the chunk
    assert 99 not in picked  # tenant 2 has none: the route's own sender
    assert set(picked.values()) == {"+13125550001", "ACMEShop"}  # both used over 40 numbers
    again = await TenantSenders(rules).pick([row(7, 1, phones[7])])
    assert again[7] == picked[7]  # the same recipient, the same sender id
    spec = route("twilio")
    own = Outgoing(client_ref="r", to=phones[7], body="hi", sender=picked[7])
    assert pick_sender(spec, own) == picked[7]  # set by the dispatcher: it wins
