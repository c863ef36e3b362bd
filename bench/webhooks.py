"""Tenant webhook throughput: ``python -m bench webhooks`` (issue 21's webhook bullet).

For each batch size (``--batches``, default 1 and 100), on a fresh database: ``--events``
bulk messages are accepted through the sender's own SQL (``sender.repo.mark_accepted``, in
statements of 1,000 as the sender does) for a tenant with one endpoint subscribed to
``message.accepted``, so the triggers write that many outbox rows; then one ``hexcast
webhooks`` worker sends them to a receiver in this process (HTTP/1.1, keep-alive, answers 200)
and events/s is counted from the first event received to the last.

The outbox's cost on the sending path: the same acceptances timed with the trigger disabled,
for a tenant without any endpoint (the trigger's probe finds none) and with one subscribed
(an outbox row per message).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg

from bench import ui
from bench.common import OUT, database, loadavg, machine
from bench.providers import save
from hexcast.core.settings import load_settings
from hexcast.devstack.procs import hexcast_process
from hexcast.testing import make_tenant
from sender import repo
from sender.models import MessageState
from sender.webhooks.signing import new_secret

__all__ = ["Counter", "WebhookResult", "add_arguments", "run"]

CHUNK = 1000


@dataclass
class WebhookResult:
    batch_size: int
    events: int
    requests: int
    seconds: float
    events_per_s: float
    accept_no_trigger_s: float
    accept_no_endpoint_s: float
    accept_subscribed_s: float


class Counter(ThreadingHTTPServer):
    """A tenant endpoint on 127.0.0.1 that answers 200 at once and counts events and requests
    (a batch is a JSON list), with the first and last request's times."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.events = self.requests = 0
        self.first = self.last = 0.0

    def serve(self) -> str:
        """Serve from a daemon thread; the endpoint's URL."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Counter

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.events += len(body) if isinstance(body, list) else 1
            self.server.requests += 1
            self.server.last = time.perf_counter()
            self.server.first = self.server.first or self.server.last
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


async def _accept(conn: asyncpg.Connection, tenant_id: int, n: int, prefix: str) -> float:
    """``n`` messages queued → sending → accepted; seconds the acceptances took."""
    rows = await conn.fetch(
        "INSERT INTO messages (message_key, client_ref, tenant_id, lane, phone, body)"
        " SELECT $2 || i, $2 || i, $1, 'bulk', '+1312' || lpad(i::text, 7, '0'), 'hi'"
        " FROM generate_series(1, $3) AS i RETURNING id", tenant_id, prefix, n)
    ids = [r["id"] for r in rows]
    await repo.transition(conn, ids=ids, to=MessageState.SENDING,
                          from_states=[MessageState.QUEUED], reason=None, actor="bench", attempts=1)
    started = time.perf_counter()
    for i in range(0, n, CHUNK):
        chunk = ids[i:i + CHUNK]
        await repo.mark_accepted(conn, accepted=[(m, f"p{m}") for m in chunk], actor="bench")
    return time.perf_counter() - started


async def _prepare(dsn: str, url: str, events: int, batch_size: int
                   ) -> tuple[float, float, float]:
    """Acceptance times: without the trigger, without an endpoint, with one subscribed."""
    conn = await asyncpg.connect(dsn)
    try:
        quiet = await make_tenant(conn, prefix="bench-quiet")
        await conn.execute("ALTER TABLE messages DISABLE TRIGGER webhook_messages")
        bare = await _accept(conn, quiet.id, events, "b-")
        await conn.execute("ALTER TABLE messages ENABLE TRIGGER webhook_messages")
        without = await _accept(conn, quiet.id, events, "q-")
        tenant = await make_tenant(conn, prefix="bench-wh")
        await conn.execute(
            "INSERT INTO webhook_endpoints (tenant_id, url, event_types, batch_size, secret)"
            " VALUES ($1, $2, '{message.accepted}', $3, $4)", tenant.id, url, batch_size,
            new_secret())
        return bare, without, await _accept(conn, tenant.id, events, "s-")
    finally:
        await conn.close()


def run_one(events: int, batch_size: int) -> WebhookResult:
    server = Counter()
    url = server.serve()
    with database() as dsn:
        bare, without, subscribed = asyncio.run(_prepare(dsn, url, events, batch_size))
        settings = load_settings(database_url=dsn, webhook_allow_private_urls=True,
                                 log_level="warning")
        worker = hexcast_process("webhooks", ["webhooks"], env=settings.to_env(),
                                 log_dir=OUT / "logs")
        worker.spawn()
        try:
            while server.events < events:
                worker.check_alive()
                time.sleep(0.05)
        finally:
            worker.terminate()
    server.shutdown()
    seconds = server.last - server.first  # from the first event: the worker's start-up aside
    return WebhookResult(batch_size, server.events, server.requests, seconds,
                         server.events / seconds, bare, without, subscribed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batches", default="1,100", help="comma-separated endpoint batch sizes")


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    results = [run_one(args.events, int(b)) for b in args.batches.split(",")]
    doc = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
           "command": command, "loadavg_end": loadavg(), "results": [asdict(r) for r in results]}
    ui.console.print(f"results: {save(doc, 'webhooks')}")
    for r in results:
        ui.console.print(
            f"batch {r.batch_size:>3}: {r.events} events in {r.requests} requests,"
            f" {r.seconds:.1f} s = {r.events_per_s:,.0f} events/s; accepting {r.events}:"
            f" {r.accept_no_trigger_s:.2f} s without the trigger,"
            f" {r.accept_no_endpoint_s:.2f} s without an endpoint,"
            f" {r.accept_subscribed_s:.2f} s with one subscribed")
    return doc
