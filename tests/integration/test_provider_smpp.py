"""hexcast's SMPP route (``sender/providers/smpp*.py``) against the simulator's SMSC over real
TCP: long messages split where they must be and put back together by the SMSC, each part's
receipt, throttling waited out, a dropped connection reconnected, a refused bind."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from hexcast.core.errors import ProviderUnavailable
from hexcast.testing import running_sim
from providersim import SimConfig
from sender.models import ProviderSpec
from sender.providers import DeliveryStatus, Outgoing, Receipt
from sender.providers.base import Reply
from sender.providers.smpp import SmppProvider
from sender.text import segment_info

SYSTEM_ID, PASSWORD = "hexcast", "secret"
GSM_LONG = "Sale {ends} [today] at 9€ ~ ^caret| \\ " * 8  # extension characters on every line
UCS_LONG = "Frohe Weihnachten 🎄🎁 Привет 👍🏽 " * 5 + "終わり😀"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[str, int]]:
    config = SimConfig(smpp_port=0, smpp_system_id=SYSTEM_ID, smpp_password=PASSWORD,
                       dlr_delay_s=0.1)
    with running_sim(config) as base_url:
        yield base_url, httpx.get(f"{base_url}/smpp/stats").json()["port"]


@pytest.fixture(autouse=True)
def _calm(sim: tuple[str, int]) -> Iterator[None]:
    yield
    httpx.post(f"{sim[0]}/control", json={"smpp_throttle_per_s": None, "smpp_resp_delay_s": 0,
                                          "smpp_refuse_bind": False}).raise_for_status()


class Kept:
    """What the route delivered (the sender's ``Deliveries``)."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.replies: list[Reply] = []
        self._more = asyncio.Event()

    async def __call__(self, receipts: list[Receipt], replies: list[Reply]) -> None:
        self.receipts += receipts
        self.replies += replies
        self._more.set()

    async def until(self, receipts: int = 0, replies: int = 0, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.receipts) < receipts or len(self.replies) < replies:
                self._more.clear()
                await self._more.wait()


async def call(method: str, url: str, **json: Any) -> Any:
    """The simulator's HTTP side, without blocking the event loop the binds run on."""
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.request(method, url, json=json or None,
                                         params={"limit": 10_000} if method == "GET" else None)
        response.raise_for_status()
        return response.json()


def route(port: int, **smpp: Any) -> ProviderSpec:
    return ProviderSpec(name="smsc-a", kind="smpp", url=f"smpp://127.0.0.1:{port}",
                        account=SYSTEM_ID, token=PASSWORD, sender_id="+13125550100",
                        smpp={"response_timeout_s": 5.0, **smpp})


@pytest.fixture
async def smsc(sim: tuple[str, int]) -> AsyncIterator[tuple[SmppProvider, Kept]]:
    adapter = SmppProvider(route(sim[1], binds=2), timeout_s=5.0, concurrency=1)
    kept = Kept()
    adapter.deliver_to(kept)
    try:
        yield adapter, kept
    finally:
        await adapter.aclose()


async def ledger(base_url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await call("GET", f"{base_url}/ledger"))["items"]
    return items


def numbers(first: int, count: int) -> list[str]:
    return [f"+4930{first + n:07d}" for n in range(count)]


async def test_long_messages_are_split_right_and_each_part_reports(
    sim: tuple[str, int], smsc: tuple[SmppProvider, Kept],
) -> None:
    adapter, kept = smsc
    texts = {"a": "Hello there", "b": GSM_LONG, "c": UCS_LONG}
    phones = dict(zip(texts, numbers(100, 3), strict=True))
    report = await adapter.send([Outgoing(ref, phones[ref], text) for ref, text in texts.items()])
    assert report.failure is None
    results = {r.client_ref: r for r in report.results}
    assert all(r.accepted for r in results.values())
    for ref, text in texts.items():  # as many parts as the segment counter bills
        parts = segment_info(text).segments
        assert len(results[ref].part_ids) == (parts if parts > 1 else 0)
    ledgered = {i["to"]: i["body"] for i in await ledger(sim[0]) if i["to"] in phones.values()}
    assert ledgered == {phones[ref]: text for ref, text in texts.items()}  # put back together
    ids = [pid for r in results.values() for pid in (r.part_ids or (r.provider_message_id,))]
    await kept.until(receipts=len(ids))
    assert sorted(r.provider_message_id for r in kept.receipts) == sorted(ids)
    assert {r.status for r in kept.receipts} == {DeliveryStatus.DELIVERED}


async def test_throttling_slows_down_and_nothing_is_lost_or_sent_twice(
    sim: tuple[str, int], smsc: tuple[SmppProvider, Kept],
) -> None:
    adapter, _ = smsc
    await call("POST", f"{sim[0]}/control", smpp_throttle_per_s=200)
    phones = numbers(1000, 600)
    report = await adapter.send([Outgoing(f"t{n}", p, f"Deal {n}") for n, p in enumerate(phones)])
    assert report.failure is None
    assert sum(r.accepted for r in report.results) == 600
    sent = Counter(i["to"] for i in await ledger(sim[0]) if i["to"] in set(phones))
    assert (len(sent), set(sent.values())) == (600, {1})
    stats = await call("GET", f"{sim[0]}/smpp/stats")
    assert stats["throttled"] > 0  # it was pushed back, and waited


async def test_a_dropped_connection_is_reconnected_and_nothing_resent(
    sim: tuple[str, int], smsc: tuple[SmppProvider, Kept],
) -> None:
    adapter, _ = smsc
    await adapter.send([Outgoing("warm", numbers(5000, 1)[0], "warm up")])  # both binds up
    await call("POST", f"{sim[0]}/control", smpp_drop_after=50)
    phones = numbers(5001, 200)
    first = await adapter.send([Outgoing(f"d{n}", p, f"Drop {n}") for n, p in enumerate(phones)])
    accepted = {r.client_ref for r in first.results if r.accepted}
    if first.failure is not None:  # the drop cut some answers: those may have gone, unknown
        assert isinstance(first.failure, ProviderUnavailable)
    rest = [Outgoing(f"e{n}", p, f"After {n}") for n, p in enumerate(numbers(6000, 50))]
    async with asyncio.timeout(30):
        while True:
            again = await adapter.send(rest)
            if again.failure is None:
                break
            rest = [m for m in rest if m.client_ref not in {r.client_ref for r in again.results}]
    assert adapter.live_binds >= 1
    sent = Counter(i["to"] for i in await ledger(sim[0]))
    assert all(sent[p] <= 1 for p in phones)  # nothing of the cut call went twice
    assert sum(sent[p] for p in phones) >= len(accepted)


async def test_a_refused_bind_makes_the_route_unavailable(sim: tuple[str, int]) -> None:
    await call("POST", f"{sim[0]}/control", smpp_refuse_bind=True)
    adapter = SmppProvider(route(sim[1]), timeout_s=1.0, concurrency=1)
    try:
        report = await adapter.send([Outgoing("r1", numbers(9000, 1)[0], "hi")])
    finally:
        await adapter.aclose()
    assert report.results == []
    assert isinstance(report.failure, ProviderUnavailable)
    assert not report.failure.ambiguous  # nothing was written: it may go elsewhere
    assert "ESME_RBINDFAIL" in str(report.failure)


async def test_a_wrong_password_is_named(sim: tuple[str, int]) -> None:
    spec = route(sim[1]).model_copy(update={"token": SecretStr("nope")})
    adapter = SmppProvider(spec, timeout_s=1.0, concurrency=1)
    try:
        report = await adapter.send([Outgoing("w1", numbers(9100, 1)[0], "hi")])
    finally:
        await adapter.aclose()
    assert "ESME_RINVPASWD" in str(report.failure)


async def test_a_reply_comes_over_the_bind(
    sim: tuple[str, int], smsc: tuple[SmppProvider, Kept],
) -> None:
    adapter, kept = smsc
    await adapter.send([Outgoing("m0", numbers(9200, 1)[0], "hello")])  # bound
    await call("POST", f"{sim[0]}/smpp/mo", **{"from": "+4930009201", "to": "13125550100",
                                                "text": "STOP"})
    await kept.until(replies=1)
    [reply] = kept.replies
    assert (reply.phone, reply.to, reply.body) == ("+4930009201", "13125550100", "STOP")
