"""hexcast's SMPP client (``sender/providers/smpp*.py``) against the simulator's SMSC served in
the test's own event loop (``providersim.smsc``: the real counterpart, not a fake), read through
its ``/smpp/stats`` counters: the window is never exceeded, unanswered submits are reported in
doubt, an idle link is kept alive by enquire_link and a silent one replaced, every bind unbinds
on shutdown, a transmitter + receiver pair gets its receipts on the receiver, ``mps_per_bind``
caps each bind, and ESME_RMSGQFUL slows the binds down with every message sent once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

from hexcast.core.errors import ProviderUnavailable
from providersim.config import SimConfig
from providersim.ledger import Sim
from providersim.smsc import Smsc
from sender.models import ProviderSpec
from sender.providers import Outgoing, Receipt
from sender.providers.base import Reply, SendReport
from sender.providers.smpp import SmppProvider

SYSTEM_ID, PASSWORD = "hexcast", "secret"


class Kept:
    """The receipts the route delivered (the sender's ``Deliveries``)."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []

    async def __call__(self, receipts: list[Receipt], replies: list[Reply]) -> None:
        self.receipts += receipts


@asynccontextmanager
async def smsc(**config: Any) -> AsyncIterator[Smsc]:
    settings = {"smpp_port": 0, "smpp_system_id": SYSTEM_ID, "smpp_password": PASSWORD,
                "dlr_delay_s": 0.05, **config}
    async with Smsc(Sim(SimConfig(**settings))) as server:
        yield server


def fault(server: Smsc, **changes: Any) -> None:
    """Change the SMSC's faults as ``POST /control`` does."""
    server.sim.config = SimConfig.model_validate({**server.sim.config.model_dump(), **changes})


@asynccontextmanager
async def route(server: Smsc, **smpp: Any) -> AsyncIterator[tuple[SmppProvider, Kept]]:
    spec = ProviderSpec(name="smsc-a", kind="smpp", url=f"smpp://127.0.0.1:{server.port}",
                        account=SYSTEM_ID, token=PASSWORD, sender_id="+13125550100",
                        smpp={"response_timeout_s": 5.0, **smpp})
    adapter = SmppProvider(spec, timeout_s=5.0, concurrency=1)
    adapter.deliver_to(kept := Kept())
    async with aclosing(adapter):  # unbinds
        yield adapter, kept


def messages(prefix: str, count: int, first: int = 0) -> list[Outgoing]:
    return [Outgoing(f"{prefix}{n}", f"+4930{first + n:07d}", f"{prefix} deal {n}")
            for n in range(count)]


async def until(done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not so after {timeout_s:g} s")


def accepted_once(server: Smsc, report: SendReport, sent: list[Outgoing]) -> None:
    """Every message accepted, and in the SMSC's ledger exactly once."""
    assert report.failure is None
    assert sorted(r.client_ref for r in report.results if r.accepted) == sorted(
        m.client_ref for m in sent)
    ledgered = Counter(r.to for r in server.sim.records)
    assert {m.to: ledgered[m.to] for m in sent} == {m.to: 1 for m in sent}
    assert server.sim.duplicates == 0  # nothing was even offered twice


async def test_a_bind_never_has_more_than_its_window_unanswered() -> None:
    async with smsc(smpp_resp_delay_s=0.2) as server, route(server, binds=2, window=4) as (
            adapter, _):
        sent = messages("w", 40)
        report = await adapter.send(sent)
        stats = server.snapshot()
    accepted_once(server, report, sent)
    assert 1 < stats["max_in_flight_per_bind"] <= 4  # the slow answers filled it, no further


async def test_unanswered_submits_are_reported_in_doubt() -> None:
    async with smsc(smpp_hold_submits=True) as server, route(server, response_timeout_s=0.5) as (
            adapter, _):
        async with asyncio.timeout(15):  # the response timeout ends the call: it never hangs
            report = await adapter.send(messages("h", 5))
        held = server.stats["submits_held"]
    assert report.results == []
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous  # written and unanswered: never resent blindly
    assert "no submit_sm_resp in 0.5 s" in str(report.failure)
    assert held == len(server.sim.records) == 5  # rightly so: the SMSC did take them


async def test_an_idle_link_is_kept_alive_and_a_silent_one_replaced() -> None:
    async with smsc() as server, route(server, enquire_link_s=0.2, response_timeout_s=0.5) as (
            adapter, _):
        await adapter.send(messages("k", 1))
        await until(lambda: server.stats["enquire_links"] >= 3)
        assert server.stats["connections"] == 1  # answered: the same link goes on
        fault(server, smpp_mute_enquire=True)
        await until(lambda: server.stats["connections"] >= 2)  # given up on, bound again
        assert server.stats["enquire_links_unanswered"] >= 1
        fault(server, smpp_mute_enquire=False)
        again = messages("k", 1, first=1)
        report = await adapter.send(again)
    accepted_once(server, report, again)
    assert server.stats["binds"] >= 2


async def test_every_bind_unbinds_on_shutdown() -> None:
    async with smsc() as server:
        async with route(server, binds=3) as (adapter, _):
            await until(lambda: adapter.live_binds == 3)
            sent = messages("u", 6)
            accepted_once(server, await adapter.send(sent), sent)
        assert server.stats["unbinds"] == 3
        await until(lambda: server.snapshot()["binds_now"] == 0)


async def test_a_pair_sends_on_its_transmitter_and_gets_receipts_on_its_receiver() -> None:
    async with smsc() as server, route(server, binds=2, bind_mode="pair") as (adapter, kept):
        await until(lambda: adapter.live_binds == 2)
        sent = messages("p", 10)
        report = await adapter.send(sent)
        await until(lambda: len(kept.receipts) >= 10)
        stats = server.snapshot()
    accepted_once(server, report, sent)  # a submit over a receiver would be refused
    assert (stats["bind_transmitter"], stats["bind_receiver"]) == (2, 2)
    assert "bind_transceiver" not in stats
    assert stats["deliver_sm_to_bind_receiver"] == 10
    assert sorted(r.provider_message_id for r in kept.receipts) == sorted(
        r.provider_message_id or "" for r in report.results)


async def test_mps_per_bind_caps_what_each_bind_submits_in_a_second() -> None:
    async with smsc() as server, route(server, binds=2, mps_per_bind=20) as (adapter, _):
        sent = messages("r", 100)
        report = await adapter.send(sent)
        most = server.stats["max_submits_per_bind_second"]
    accepted_once(server, report, sent)
    assert 0 < most <= 20 + 1


async def test_queue_full_answers_slow_the_binds_and_every_message_goes_once() -> None:
    async with smsc(smpp_queue_full_per_s=100) as server, route(server, binds=2) as (adapter, _):
        sent = messages("q", 400)
        report = await adapter.send(sent)
        stats = server.snapshot()
    accepted_once(server, report, sent)
    assert 0 < stats["queue_full"] < len(sent)  # pushed back, and backed off (no hammering)
    assert "throttled" not in stats  # only the queue-full fault pushed back
