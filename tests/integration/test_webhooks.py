"""Tenant webhooks end to end: state changes in PostgreSQL (the sender's own SQL) → outbox
(triggers) → the real ``hexcast webhooks`` worker → a receiver on 127.0.0.1, verified by the
independent ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from hexcast.core.db import one
from hexcast.devstack.procs import ChildProcess
from hexcast.testing import TenantRef, eventually, throwaway_database
from sender import repo
from sender.keys import bulk_key
from tests.integration.senderkit import providers_json, sender_world
from tests.integration.webhookkit import (
    Answer,
    Receiver,
    add_endpoint,
    attempts_logged,
    deliver,
    fail,
    new_messages,
    tenant_with_endpoint,
    webhooks_worker,
)

MESSAGE_TYPES = ["message.accepted", "message.delivered", "message.failed", "message.expired"]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture(scope="module")
def worker(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChildProcess]:
    """One worker for the tests that watch it deliver, each to tenants and receivers of its
    own; the tests that kill a worker or start one with other settings do it on a database of
    their own (``private``), which this one does not serve."""
    child = webhooks_worker(database_url, tmp_path_factory.mktemp("logs"))
    yield child
    child.terminate()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def private() -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A database of the test's own (its URL) and a connection to it."""
    async with throwaway_database() as url:
        connection = await asyncpg.connect(url)
        yield url, connection
        await connection.close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Make receivers (``script`` as for :class:`Receiver`); all closed after the test."""
    made: list[Receiver] = []

    def make(script: Callable[[int, dict[str, str], bytes], Answer] | None = None) -> Receiver:
        made.append(Receiver(script))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def _events(seen: list[Any], secret: str) -> list[tuple[str, dict[str, Any]]]:
    """(webhook-id, verified event) of every 2xx request, in arrival order."""
    return [(s.headers["webhook-id"], Webhook(secret).verify(s.body, s.headers)) for s in seen]


async def test_delivered_and_failed_messages_arrive_signed(
        conn: asyncpg.Connection, receivers: Callable[..., Receiver], worker: ChildProcess) -> None:
    receiver = receivers()
    tenant, _, secret = await tenant_with_endpoint(
        conn, prefix="wh", url=receiver.url, types=MESSAGE_TYPES)
    await deliver(conn, await new_messages(conn, tenant_id=tenant.id, prefix="whok-", n=1))
    await fail(conn, await new_messages(conn, tenant_id=tenant.id, prefix="whbad-", n=1),
               reason="unroutable")
    eventually(lambda: len(receiver.ok()) >= 3 or None, timeout=30)
    events = _events(receiver.ok(), secret)
    by_type = {e["type"]: e for _, e in events}
    assert sorted(by_type) == ["message.accepted", "message.delivered", "message.failed"]
    assert by_type["message.delivered"]["data"]["message_key"] == "whok-1"
    assert by_type["message.failed"]["data"]["reason"] == "unroutable"
    assert by_type["message.delivered"]["data"]["sequence"] > \
        by_type["message.accepted"]["data"]["sequence"]
    assert len({wid for wid, _ in events}) == 3


async def test_out_of_order_receipt_is_seen_after_the_acceptance(
        conn: asyncpg.Connection, receivers: Callable[..., Receiver], worker: ChildProcess) -> None:
    # the first request (message.accepted) fails: message.delivered must still wait for it
    receiver = receivers(lambda n, h, b: Answer(500) if n == 0 else Answer())
    tenant, _, secret = await tenant_with_endpoint(
        conn, prefix="whorder", url=receiver.url, types=MESSAGE_TYPES)
    held = await new_messages(conn, tenant_id=tenant.id, prefix="whheld-", n=1)
    early = await new_messages(conn, tenant_id=tenant.id, prefix="whearly-", n=1)
    # the receipt came first: held (not applied to a message still sending) ...
    assert not await repo.apply_receipts(conn, receipts=[("whheld-1", "delivered", None)],
                                         actor="test", from_states=("accepted", "unknown"))
    await deliver(conn, held)  # ... and applied after the acceptance
    # a receipt applied to a sending message: final at once; a late acceptance changes nothing
    await deliver(conn, early, accept=False)
    await deliver(conn, early)
    eventually(lambda: len(receiver.ok()) >= 3 or None, timeout=30)
    events = [e for _, e in _events(receiver.ok(), secret)]
    held_seen = [e["type"] for e in events if e["data"]["message_key"] == "whheld-1"]
    early_seen = [e["type"] for e in events if e["data"]["message_key"] == "whearly-1"]
    assert held_seen == ["message.accepted", "message.delivered"]
    assert early_seen == ["message.delivered"]


async def test_kill_9_mid_stream_loses_nothing(
        private: tuple[str, asyncpg.Connection], receivers: Callable[..., Receiver],
        logs: Path) -> None:
    database_url, conn = private
    receiver = receivers(lambda n, h, b: Answer(delay_s=0.02))
    # what the killed worker claimed comes back when its lease runs out, and the lease grows
    # with the request timeout: 0.5 s (answers take 0.02 s) makes it 21.5 s instead of 27 s
    quick = {"webhook_timeout_s": 0.5}
    child = webhooks_worker(database_url, logs, **quick)
    try:
        tenant, _, _ = await tenant_with_endpoint(
            conn, prefix="whkill", url=receiver.url, types=["message.accepted"])
        ids = await new_messages(conn, tenant_id=tenant.id, prefix="whkill-", n=300)
        await deliver(conn, ids)
        eventually(lambda: len(receiver.ok()) >= 40 or None, timeout=30, every=0.01)
        child.kill()
        assert len({s.headers["webhook-id"] for s in receiver.ok()}) < 300
        child = webhooks_worker(database_url, logs, **quick)
        eventually(lambda: len({s.headers["webhook-id"] for s in receiver.ok()}) >= 300 or None,
                   timeout=90)
    finally:
        child.terminate()
    assert {json.loads(s.body)["data"]["message_key"] for s in receiver.ok()} == set(ids)


async def test_500_then_200_is_retried_with_the_same_id(
        conn: asyncpg.Connection, receivers: Callable[..., Receiver], worker: ChildProcess) -> None:
    receiver = receivers(lambda n, h, b: Answer(500) if n < 2 else Answer())
    tenant, endpoint_id, _ = await tenant_with_endpoint(
        conn, prefix="whretry", url=receiver.url, types=["message.accepted"])
    await deliver(conn, await new_messages(conn, tenant_id=tenant.id, prefix="whr-", n=1))
    eventually(lambda: receiver.ok() or None, timeout=30)
    await attempts_logged(conn, endpoint_id=endpoint_id, n=3)
    statuses = [r["status"] for r in await conn.fetch(
        "SELECT status FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY id", endpoint_id)]
    assert [s.status for s in receiver.seen] == [500, 500, 200]
    assert len({s.headers["webhook-id"] for s in receiver.seen}) == 1
    assert statuses == [500, 500, 200]


async def test_410_disables_and_the_other_endpoints_are_told(
        conn: asyncpg.Connection, receivers: Callable[..., Receiver], worker: ChildProcess) -> None:
    gone, other = receivers(lambda n, h, b: Answer(410)), receivers()
    tenant, gone_id, other_secret = await _one_event_beside(conn, gone, other, prefix="whg")
    endpoint = one(await conn.fetchrow(
        "SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1", gone_id))
    told = _events(other.ok(), other_secret)
    # no enabled endpoint subscribes to message.accepted any more: nothing is written
    await deliver(conn, await new_messages(conn, tenant_id=tenant.id, prefix="whg2-", n=5))
    later = await conn.fetchval("SELECT count(*) FROM webhook_outbox WHERE tenant_id = $1"
                                " AND type = 'message.accepted'", tenant.id)
    assert len(gone.seen) == 1
    assert later == 1
    assert endpoint["enabled"] is False
    assert "410" in endpoint["disabled_reason"]
    assert [e["type"] for _, e in told] == ["endpoint.disabled"]
    assert told[0][1]["data"]["endpoint_id"] == gone_id


async def test_429_retry_after_is_honoured(
        conn: asyncpg.Connection, receivers: Callable[..., Receiver], worker: ChildProcess) -> None:
    receiver = receivers(lambda n, h, b: Answer(429, {"Retry-After": "2"}) if n == 0 else Answer())
    tenant, _, _ = await tenant_with_endpoint(
        conn, prefix="wh429", url=receiver.url, types=["message.accepted"])
    await deliver(conn, await new_messages(conn, tenant_id=tenant.id, prefix="wh429-", n=1))
    eventually(lambda: receiver.ok() or None, timeout=30)
    first, second = receiver.seen
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.9  # the schedule alone would have retried after 0.3 s


def test_through_the_sender_and_the_provider_simulator(
        broker_url: str, tmp_path: Path, receivers: Callable[..., Receiver]) -> None:
    receiver = receivers()
    with sender_world(broker_url, tmp_path, sim_dlr_delay_s=0.1) as world:
        world.api()  # the simulator posts its receipts to this api
        route = {"name": "sim", "url": world.sim("provider-sim"), "token": "sim-token"}
        world.settings = world.settings.model_copy(
            update={"sender_providers": providers_json(route)})
        _, secret = asyncio.run(_endpoint(world.settings.database_url, world.tenant_id,
                                          receiver.url))
        world.spawn("webhooks", ["webhooks"])
        world.sender("sender-bulk")
        # run 71: two delivered; run 72 (the simulator failing every delivery): one failed
        for run_id, first, count, fail_rate, states in (
                (71, 0, 2, 0.0, {"delivered": 2}), (72, 10, 1, 1.0, {"delivered": 2, "failed": 1})):
            httpx.post(f"{route['url']}/control",
                       json={"deliver_fail_rate": fail_rate}).raise_for_status()
            world.publish(count, run_id=run_id, first=first)
            eventually(lambda s=states: world.states() == s or None, timeout=60)  # type: ignore[misc]
        eventually(lambda: len(receiver.ok()) >= 6 or None, timeout=30)
    events = [e for _, e in _events(receiver.ok(), secret)]
    kinds = sorted(e["type"] for e in events)
    assert kinds == ["message.accepted"] * 3 + ["message.delivered"] * 2 + ["message.failed"]
    failed = next(e for e in events if e["type"] == "message.failed")
    assert failed["data"]["message_key"] == bulk_key(campaign_run_id=72, recipient_id=10)
    assert failed["data"]["campaign_run_id"] == 72


async def _one_event_beside(conn: asyncpg.Connection, failing: Receiver, other: Receiver, *,
                            prefix: str) -> tuple[TenantRef, int, str]:
    """A tenant with an endpoint at ``failing`` (message.accepted) and one at ``other``
    (optout.created only), one message accepted; returns once ``other`` got a request:
    (tenant, the failing endpoint's id, the other's secret)."""
    tenant, failing_id, _ = await tenant_with_endpoint(
        conn, prefix=prefix, url=failing.url, types=["message.accepted"])
    _, other_secret = await add_endpoint(conn, tenant_id=tenant.id, url=other.url,
                                         types=["optout.created"])
    await deliver(conn, await new_messages(conn, tenant_id=tenant.id, prefix=f"{prefix}-", n=1))
    eventually(lambda: other.ok() or None, timeout=30)
    return tenant, failing_id, other_secret


async def _endpoint(database_url: str, tenant_id: int, url: str) -> tuple[int, str]:
    conn = await asyncpg.connect(database_url)
    try:
        return await add_endpoint(conn, tenant_id=tenant_id, url=url, types=MESSAGE_TYPES)
    finally:
        await conn.close()


async def test_a_slow_endpoint_does_not_hold_up_another_tenants_events(
        conn: asyncpg.Connection, receivers: Callable[..., Receiver], worker: ChildProcess) -> None:
    slow, quick = receivers(lambda n, h, b: Answer(delay_s=0.5)), receivers()
    hung, _, _ = await tenant_with_endpoint(
        conn, prefix="whslow", url=slow.url, types=["message.accepted"])
    other, _, _ = await tenant_with_endpoint(
        conn, prefix="whquick", url=quick.url, types=["message.accepted"])
    await deliver(conn, await new_messages(conn, tenant_id=hung.id, prefix="whslow-", n=150))
    eventually(lambda: slow.seen or None, timeout=30, every=0.01)
    await deliver(conn, await new_messages(conn, tenant_id=other.id, prefix="whquick-", n=1))
    eventually(lambda: quick.ok() or None, timeout=30)
    eventually(lambda: len(slow.ok()) >= 150 or None, timeout=60)
    # 150 requests of 0.5 s, 50 at a time: the other tenant's event went out before their end
    assert quick.ok()[0].at < max(s.at for s in slow.ok())


async def test_an_endpoint_failing_too_long_is_disabled(
        private: tuple[str, asyncpg.Connection], receivers: Callable[..., Receiver],
        logs: Path) -> None:
    database_url, conn = private
    down, other = receivers(lambda n, h, b: Answer(500)), receivers()
    child = webhooks_worker(database_url, logs, webhook_disable_after_s=0.5)
    try:
        _, down_id, other_secret = await _one_event_beside(conn, down, other, prefix="whd")
    finally:
        child.terminate()
    reason = await conn.fetchval(
        "SELECT disabled_reason FROM webhook_endpoints WHERE id = $1 AND NOT enabled", down_id)
    told = _events(other.ok(), other_secret)
    assert "failing" in reason
    assert len(down.seen) >= 2  # retried on the schedule until the failure clock ran out
    assert [(e["type"], e["data"]["endpoint_id"]) for _, e in told] == [("endpoint.disabled", down_id)]
