"""The archiver stores every visit event once, even when records are replayed."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

from hexcast.core.bus import Bus
from hexcast.core.settings import Settings
from hexcast.devstack.procs import hexcast_process
from hexcast.testing import make_tenant
from sender.models import DeadLetter
from streams.models import VisitEvent, VisitRecord


async def _wait_rows(dsn: str, tenant_id: int, expected: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 60
        count = 0
        while time.monotonic() < deadline:
            count = await conn.fetchval("SELECT count(*) FROM visits WHERE tenant_id = $1", tenant_id)
            if count >= expected:
                break
            await asyncio.sleep(0.2)
        return int(count)
    finally:
        await conn.close()


async def _dead_letters(settings: Settings) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(settings.topic("send.dlq"), bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return [DeadLetter.decode(m.value) for ms in batches.values() for m in ms]
    finally:
        await consumer.stop()


async def test_archiver_stores_each_event_once(settings: Settings, tmp_path: Path) -> None:
    tenant = await make_tenant(settings.database_url, prefix="archive")
    now = datetime.now(UTC)
    records = [
        VisitRecord(tenant_id=tenant.id, user_id=f"u{n}", received_at=now, events=[
            VisitEvent(event_id=f"e{n}-{k}", lat=41.88, lng=-87.62, accuracy_m=10, ts=now)
            for k in range(3)
        ])
        for n in range(10)
    ]
    child = hexcast_process("archiver", ["archiver"], env=settings.to_env(), log_dir=tmp_path)
    child.spawn()
    bus = Bus(settings)
    await bus.start()
    try:
        items = [(f"{r.tenant_id}:{r.user_id}", r.encode()) for r in records]
        await bus.publish_many("visits", items + items[:4])  # four records replayed
        await bus.publish("visits", "junk", b'{"not": "a visit"}')
        assert await _wait_rows(settings.database_url, tenant.id, 30) == 30
        letters = await _dead_letters(settings)
        assert [d.source_topic for d in letters] == [settings.topic("visits")]
        assert "bad visit record" in letters[0].reason
        # Replay u0's record, then a sentinel with one new event on the same key (partition).
        sentinel = VisitRecord(tenant_id=tenant.id, user_id="u0", received_at=now, events=[
            VisitEvent(event_id="e0-new", lat=41.88, lng=-87.62, accuracy_m=10, ts=now)])
        await bus.publish_many("visits", [items[0], (items[0][0], sentinel.encode())])
        assert await _wait_rows(settings.database_url, tenant.id, 31) == 31
    finally:
        await bus.stop()
        child.terminate()
