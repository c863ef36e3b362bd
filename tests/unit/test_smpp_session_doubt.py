"""A long SMPP message whose first part went and whose later part cannot go now (throttled past
``response_timeout_s``, or no bind to take it) is in doubt: an ambiguous failure that ends
``unknown``, never rejected and never sent again whole. A first part that cannot go is not in
doubt (nothing went). Against the simulator's SMSC in the test's event loop, over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from hexcast.core.errors import ProviderRateLimited, ProviderUnavailable
from providersim.config import SimConfig
from providersim.ledger import Sim
from providersim.smsc import Smsc
from sender.models import ProviderSpec
from sender.providers import Outgoing
from sender.providers.base import Receipt, Reply, SendReport
from sender.providers.smpp import SmppProvider

LONG = "Winter sale: every coat half price until Sunday, in every shop and online. " * 3


@asynccontextmanager
async def smsc(**faults: Any) -> AsyncIterator[Smsc]:
    config = SimConfig(smpp_port=0, smpp_system_id="hexcast", smpp_password="secret", **faults)
    async with Smsc(Sim(config)) as server:
        yield server


@asynccontextmanager
async def route(server: Smsc) -> AsyncIterator[SmppProvider]:
    spec = ProviderSpec(name="smsc-a", kind="smpp", url=f"smpp://127.0.0.1:{server.port}",
                        account="hexcast", token="secret", sender_id="+13125550100",
                        smpp={"response_timeout_s": 0.3})
    adapter = SmppProvider(spec, timeout_s=0.5, concurrency=1)
    adapter.deliver_to(_ignore)  # the binds open now
    try:
        for _ in range(1000):
            if adapter.live_binds:
                break
            await asyncio.sleep(0.01)
        yield adapter
    finally:
        await adapter.aclose()


async def send(server: Smsc, text: str) -> SendReport:
    async with route(server) as adapter:
        return await adapter.send([Outgoing("m1", "+493012345678", text)])


async def _ignore(receipts: list[Receipt], replies: list[Reply]) -> None:
    del receipts, replies


async def test_a_later_part_throttled_past_the_timeout_leaves_the_message_in_doubt() -> None:
    async with smsc(smpp_throttle_after=1) as server:
        report = await send(server, LONG)
        taken = server.stats["submits"]
    assert report.results == []  # not rejected: part 1 is on its way to the handset
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous
    assert "m1: part 2 of 2 not sent (submit-0x58: ESME_RTHROTTLED) after 1 went" in str(
        report.failure)
    assert (taken, server.stats["throttled"] > 0) == (1, True)


async def test_a_later_part_without_a_bind_leaves_the_message_in_doubt() -> None:
    async with smsc(smpp_drop_after=1) as server, route(server) as adapter:
        # bound; from now on binds are refused, and the first submit closes the connection
        server.sim.config = server.sim.config.model_copy(update={"smpp_refuse_bind": True})
        report = await adapter.send([Outgoing("m1", "+493012345678", LONG)])
        taken = server.stats["submits"]
    assert report.results == []
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous
    assert taken == 1  # the first part only; the second found no bind


async def test_a_first_part_throttled_past_the_timeout_is_not_in_doubt() -> None:
    async with smsc(smpp_throttle_after=0) as server:
        report = await send(server, LONG)
        taken = server.stats["submits"]
    assert report.results == []
    assert isinstance(report.failure, ProviderRateLimited)  # nothing went: sent again later
    assert taken == 0

