"""Helpers for sender tests: a private database and topics, provider-sims and sender workers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from hexcast.core.bus import Bus
from hexcast.core.db import connect_pool
from hexcast.core.kafka import delete_topics
from hexcast.core.settings import Settings
from hexcast.core.topics import create_topics, topic_specs
from hexcast.devstack.procs import ChildProcess, free_port, hexcast_process, wait_http
from hexcast.testing import (
    add_consenting_recipients,
    clear_prefixes,
    create_database,
    drop_database,
    dsn,
    make_settings,
    make_tenant,
)
from hexcast.testing.scrape import Samples, scrape
from sender import queries as sender_queries
from sender.deferred import release_due
from sender.keys import bulk_key
from sender.models import Lane, SendBatch, SendRequest

__all__ = ["SenderWorld", "ledger", "providers_json", "sender_world", "sim_stats"]


class SenderWorld:
    """One tenant in a private database, private topics, and the children started for it."""

    def __init__(self, settings: Settings, log_dir: Path, tenant: tuple[int, str]) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.tenant_id, self.api_key = tenant
        self.children: list[ChildProcess] = []
        self.metrics_urls: dict[str, str] = {}  # child name → its /metrics

    def _metrics_env(self, name: str, settings: Settings) -> dict[str, str]:
        """``settings`` as a child's environment, with a ``/metrics`` port of its own."""
        port = free_port()
        self.metrics_urls[name] = f"http://127.0.0.1:{port}/metrics"
        return {**settings.to_env(), "HEXCAST_METRICS_PORT": str(port)}

    def scrape(self, *names: str) -> Samples:
        """The metrics of the named children (all when none is named), summed by labels; a
        child just started is waited for until its ``/metrics`` answers."""
        wanted, children = names or tuple(self.metrics_urls), {c.name: c for c in self.children}
        for name in wanted:
            wait_http(self.metrics_urls[name], child=children[name])
        return scrape([self.metrics_urls[n] for n in wanted])

    def api(self, port: int | None = None) -> str:
        """Start the API (its port and public URL go into ``settings`` for later children)."""
        port = port or free_port()
        self.settings = self.settings.model_copy(
            update={"api_port": port, "api_public_url": f"http://127.0.0.1:{port}"}
        )
        child = hexcast_process("api", ["api"], env=self._metrics_env("api", self.settings),
                                log_dir=self.log_dir)
        child.spawn()
        self.children.append(child)
        wait_http(f"{self.settings.api_public_url}/health", child=child)
        return self.settings.api_public_url

    def sim(self, name: str, **overrides: object) -> str:
        """Start a provider-sim; returns its base URL."""
        port = free_port()
        env = self.settings.model_copy(update={"sim_port": port, **overrides}).to_env()
        child = hexcast_process(name, ["provider-sim"], env=env, log_dir=self.log_dir)
        child.spawn()
        self.children.append(child)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", child=child)
        return url

    def smsc(self, name: str, **overrides: object) -> tuple[str, dict[str, Any]]:
        """Start a provider-sim that is an SMSC too (system_id ``hexcast``, password
        ``secret``); returns its base URL and an ``smpp`` route to it."""
        port, smpp = free_port(), free_port()
        env = self.settings.model_copy(update={"sim_port": port, **overrides}).to_env()
        child = hexcast_process(name, ["provider-sim", "--smpp-port", str(smpp)], env=env,
                                log_dir=self.log_dir)
        child.spawn()
        self.children.append(child)
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", child=child)
        return url, {"name": f"{name}-route", "kind": "smpp", "url": f"smpp://127.0.0.1:{smpp}",
                     "account": "hexcast", "token": "secret", "sender_id": "+13125550100"}

    def sender(self, name: str, lane: Lane = Lane.BULK, **overrides: object) -> ChildProcess:
        return self.spawn(name, ["sender", "--lane", lane.value], **overrides)

    def spawn(self, name: str, args: list[str], **overrides: object) -> ChildProcess:
        """Start ``hexcast <args>`` with this world's settings (and ``overrides``)."""
        env = self._metrics_env(name, self.settings.model_copy(update=overrides))
        child = hexcast_process(name, args, env=env, log_dir=self.log_dir)
        child.spawn()
        self.children.append(child)
        return child

    def consent(self, phones: list[str], *, tenant_id: int | None = None) -> None:
        """Recipients with a marketing consent record for ``phones`` (of this world's tenant,
        or of ``tenant_id``)."""
        asyncio.run(add_consenting_recipients(
            self.settings.database_url, tenant_id=tenant_id or self.tenant_id, phones=phones))

    def cli(self, *args: str) -> str:
        """``hexcast <args>`` with this world's settings; its output (it must succeed)."""
        done = subprocess.run([sys.executable, "-m", "hexcast", *args], capture_output=True,
                              text=True, env={**self.settings.to_env(), "NO_COLOR": "1"},
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def publish(
        self, count: int, *, run_id: int, lane: Lane = Lane.BULK, first: int = 0,
        consent: bool = True,
    ) -> None:
        """``count`` bulk messages of campaign run ``run_id`` in records of up to 1,000."""
        phones = {n: f"+1312{n:07d}" for n in range(first, first + count)}
        self.publish_to(phones, run_id=run_id, lane=lane, consent=consent)

    def publish_to(
        self, phones: dict[int, str], *, run_id: int, lane: Lane = Lane.BULK,
        consent: bool = True, expires_at: datetime | None = None, body: str = "hello {n}",
        created_at: datetime | None = None,
    ) -> None:
        """One message per recipient number (keyed by run and recipient id)."""
        if consent:
            self.consent(list(phones.values()))
        items = [
            SendRequest(message_key=bulk_key(campaign_run_id=run_id, recipient_id=n),
                        tenant_id=self.tenant_id, phone=phone, body=body.format(n=n),
                        campaign_run_id=run_id, expires_at=expires_at)
            for n, phone in phones.items()
        ]

        async def run() -> None:
            bus = Bus(self.settings)
            await bus.start()
            try:
                for start in range(0, len(items), 1000):
                    chunk = items[start : start + 1000]
                    record = SendBatch(lane=lane, items=chunk,
                                       created_at=created_at or datetime.now(UTC))
                    await bus.publish(lane.topic, f"run-{run_id}-{start}", record.encode())
            finally:
                await bus.stop()

        asyncio.run(run())

    def message(self, key: str) -> dict[str, Any] | None:
        """A message row and the list of states it went through."""
        async def run() -> dict[str, Any] | None:
            conn = await asyncpg.connect(self.settings.database_url)
            try:
                row = await conn.fetchrow(
                    "SELECT id, tenant_id, state::text, reason, not_before FROM messages"
                    " WHERE message_key = $1", key)
                if row is None:
                    return None
                _, events = await sender_queries.message_history(
                    conn, tenant_id=row["tenant_id"], message_key=key)
            finally:
                await conn.close()
            return {**dict(row), "history": [e["to_state"] for e in events]}

        return asyncio.run(run())

    def scalar(self, sql: str, *args: object) -> Any:
        async def run() -> Any:
            conn = await asyncpg.connect(self.settings.database_url)
            try:
                return await conn.fetchval(sql, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def states(self) -> dict[str, int]:
        async def run() -> dict[str, int]:
            conn = await asyncpg.connect(self.settings.database_url)
            try:
                rows = await conn.fetch("SELECT state::text, count(*) AS n FROM messages GROUP BY 1")
            finally:
                await conn.close()
            return {r["state"]: r["n"] for r in rows}

        return asyncio.run(run())

    def release(self, at: datetime) -> int:
        """Run ``sender.deferred.release_due`` as the scheduler would, at ``at``."""
        async def run() -> int:
            pool = await connect_pool(self.settings.database_url, max_size=2)
            bus = Bus(self.settings)
            await bus.start()
            try:
                return await release_due(pool, bus, self.settings, now=at)
            finally:
                await bus.stop()
                await pool.close()

        return asyncio.run(run())

    def log(self, child: ChildProcess) -> str:
        return child.log_path.read_text(errors="replace")


def ledger(url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = httpx.get(f"{url}/ledger", params={"after": len(items), "limit": 10000}).json()
        items += page["items"]
        if len(items) >= page["total"] or not page["items"]:
            return items


def sim_stats(url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{url}/ledger/stats").json()
    return stats


def providers_json(*specs: dict[str, Any]) -> str:
    return json.dumps(list(specs))


@contextmanager
def sender_world(broker_url: str, log_dir: Path, **extra: object) -> Iterator[SenderWorld]:
    """A fresh database (the sweeper looks at a whole lane), topics and Redis prefix."""
    name = asyncio.run(create_database())
    settings = make_settings(broker_url, dsn(name), **extra)
    asyncio.run(create_topics(settings))
    tenant = asyncio.run(make_tenant(settings.database_url, prefix="sender"))
    world = SenderWorld(settings, log_dir, (tenant.id, tenant.api_key))
    try:
        yield world
    finally:
        for child in world.children:
            child.terminate(grace_s=5)
        asyncio.run(delete_topics(settings.bootstrap_servers, topic_specs(settings)))
        asyncio.run(drop_database(name))
        asyncio.run(clear_prefixes([settings.redis_prefix]))
