"""Number pools and validity periods end to end against the simulator (real subprocesses):
Plivo's batch requests carry each recipient's own pool number into the ledger, and keep it
from one campaign to the next; an OTP's time left reaches the Twilio dialect as
``ValidityPeriod``, which the simulator refuses out of Twilio's range, to the official SDK too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from hexcast.testing import WebhookRecorder, running_sim
from providersim import SimConfig
from sender.models import ProviderSpec
from sender.providers import Outgoing, build_provider
from sender.providers.senders import pick_sender, pool_index

PLIVO_ACCOUNT = "MAXXXXXXXXXXXXXXXXXX"
TWILIO_ACCOUNT = "AC" + "7" * 32
TOKEN = "sim-token"
POOL = ["+14155550001", "+14155550002", "+14155550003"]


def message(number: str) -> Outgoing:
    """A message to ``number`` (what the adapters pick a sender for)."""
    return Outgoing(client_ref="ref", to=number, body="hi")


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as hook:
        yield hook


@pytest.fixture(scope="module")
def plivo_url() -> Iterator[str]:
    with running_sim(SimConfig(dialect="plivo", account=PLIVO_ACCOUNT, token=TOKEN,
                               dlr_delay_s=0.05)) as url:
        yield url


@pytest.fixture(scope="module")
def twilio_url() -> Iterator[str]:
    with running_sim(SimConfig(dialect="twilio", account=TWILIO_ACCOUNT, token=TOKEN)) as url:
        yield url


def ledger(url: str) -> list[dict[str, Any]]:
    """The simulator's ledger, with what each dialect kept of a message (``extra``)."""
    answer = httpx.get(f"{url}/ledger", params={"limit": 10_000, "extra": "true"}, timeout=10.0)
    items: list[dict[str, Any]] = answer.raise_for_status().json()["items"]
    return items


async def send(route: ProviderSpec, messages: list[Outgoing]) -> None:
    adapter = build_provider(route, timeout_s=10.0, concurrency=4)
    try:
        report = await adapter.send(messages)
    finally:
        await adapter.aclose()
    assert report.failure is None
    assert all(r.accepted for r in report.results)


def recipients_on_different_numbers() -> tuple[str, str]:
    first = "+13125550100"
    other = next(f"+1312555{n:04d}" for n in range(101, 1000)
                 if pool_index(f"+1312555{n:04d}", len(POOL)) != pool_index(first, len(POOL)))
    return first, other


async def test_pool_numbers_reach_the_ledger_and_stay_with_their_recipients(
    plivo_url: str, webhook: WebhookRecorder,
) -> None:
    async with httpx.AsyncClient(base_url=plivo_url, timeout=10.0) as sim:
        (await sim.post("/control/reset")).raise_for_status()
    route = ProviderSpec(name="plivo-pool", kind="plivo", url=plivo_url, account=PLIVO_ACCOUNT,
                         token=TOKEN, sender_pool=POOL, callback_url=f"{webhook.url}/plivo")
    first, second = recipients_on_different_numbers()
    await send(route, [Outgoing("run1-a", first, "Spring sale"), Outgoing("run1-b", second, "Spring sale")])
    await send(route, [Outgoing("run2-a", first, "Summer sale")])  # the next campaign
    items = await asyncio.to_thread(ledger, plivo_url)
    senders = [(i["to"], i["body"], i["extra"]["from"]) for i in items]
    assert sorted(senders) == sorted([
        (first, "Spring sale", pick_sender(route, message(first))),
        (second, "Spring sale", pick_sender(route, message(second))),
        (first, "Summer sale", pick_sender(route, message(first))),
    ])
    assert pick_sender(route, message(first)) != pick_sender(route, message(second))
    assert {s for _, _, s in senders} <= set(POOL)


async def test_an_otps_time_left_reaches_twilio_as_its_validity_period(twilio_url: str) -> None:
    route = ProviderSpec(name="twilio-otp", kind="twilio", url=twilio_url, account=TWILIO_ACCOUNT,
                         token=TOKEN, sender_id="+15005550006")
    expires = datetime.now(UTC) + timedelta(minutes=5)
    await send(route, [Outgoing("otp-validity-1", "+13125550123", "Your code is 4711", expires)])
    [item] = [i for i in await asyncio.to_thread(ledger, twilio_url) if i["to"] == "+13125550123"]
    assert 298 <= int(item["extra"]["ValidityPeriod"]) <= 300
    assert item["extra"]["From"] == "+15005550006"


@pytest.mark.parametrize("validity", [0, 40_000])
def test_the_simulator_refuses_the_sdk_a_validity_period_out_of_range(
    twilio_url: str, validity: int,
) -> None:
    client = Client(TWILIO_ACCOUNT, TOKEN)
    client.api.base_url = twilio_url  # twilio 9.x: the Api domain's base URL
    before = len(ledger(twilio_url))
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="+13125550124", from_="+15005550006", body="x",
                               validity_period=validity)
    assert (refused.value.status, refused.value.code) == (400, 21624)
    assert len(ledger(twilio_url)) == before
    message = client.messages.create(to="+13125550125", from_="+15005550006", body="x",
                                     validity_period=36_000)
    [item] = [i for i in ledger(twilio_url) if i["provider_message_id"] == message.sid]
    assert item["extra"]["ValidityPeriod"] == "36000"
