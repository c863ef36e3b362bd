"""Support for the tenant webhook tests: a receiver whose answers a test scripts, messages
moved through the sender's own state SQL (the triggers fire as they do for the sender), and
the ``hexcast webhooks`` worker as a child process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

from hexcast.core.db import Conn
from hexcast.devstack.procs import ChildProcess, hexcast_process
from hexcast.testing import TenantRef, make_settings, make_tenant
from sender import repo
from sender.models import MessageState
from sender.webhooks.signing import new_secret

__all__ = ["Answer", "Receiver", "Seen", "add_endpoint", "attempts_logged", "deliver", "fail", "new_messages",
           "tenant_with_endpoint", "webhooks_worker"]


class Answer(NamedTuple):
    status: int = 200
    headers: dict[str, str] = {}
    delay_s: float = 0.0


class Seen(NamedTuple):
    at: float
    headers: dict[str, str]
    body: bytes
    status: int


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if len(body) < length:  # the sender died mid-request: it never saw an answer
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = self.server.receiver.answer(headers, body)
        time.sleep(answer.delay_s)
        self.server.receiver.keep(Seen(time.monotonic(), headers, body, answer.status))
        self.send_response(answer.status)
        for name, value in {**answer.headers, "Content-Length": "0"}.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # the worker opens up to 50 connections at once; with the default listen backlog of 5 the
    # kernel dropped connection attempts under load, the worker's connects timed out and a
    # short test retry schedule ended deliveries as failed (a flake of the kill -9 test)
    request_queue_size = 128

    def __init__(self, receiver: Receiver) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.receiver = receiver


class Receiver:
    """A tenant's endpoint on 127.0.0.1; ``script(n, headers, body)`` answers request ``n``
    (0-based) and every request is kept with the status it got."""

    def __init__(self, script: Callable[[int, dict[str, str], bytes], Answer] | None = None) -> None:
        self._script = script or (lambda n, h, b: Answer())
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._count = 0
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def answer(self, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            n, self._count = self._count, self._count + 1
        return self._script(n, headers, body)

    def keep(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def ok(self) -> list[Seen]:
        return [s for s in self.seen if 200 <= s.status < 300]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


async def add_endpoint(conn: Conn, *, tenant_id: int, url: str, types: list[str],
                       batch_size: int = 1) -> tuple[int, str]:
    """An enabled endpoint written directly (the API refuses 127.0.0.1): (id, secret)."""
    secret = new_secret()
    endpoint_id = await conn.fetchval(
        "INSERT INTO webhook_endpoints (tenant_id, url, event_types, batch_size, secret)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id", tenant_id, url, types, batch_size, secret)
    return int(endpoint_id), secret


async def tenant_with_endpoint(conn: Conn, *, prefix: str, url: str, types: list[str],
                               batch_size: int = 1) -> tuple[TenantRef, int, str]:
    """A new tenant with one endpoint: (tenant, endpoint id, secret)."""
    tenant = await make_tenant(conn, prefix=prefix)
    endpoint_id, secret = await add_endpoint(conn, tenant_id=tenant.id, url=url, types=types,
                                             batch_size=batch_size)
    return tenant, endpoint_id, secret


async def new_messages(conn: Conn, *, tenant_id: int, prefix: str, n: int,
                       lane: str = "bulk") -> dict[str, int]:
    """``n`` queued messages, claimed (``sending``, one attempt): key → id."""
    rows = await conn.fetch(
        "INSERT INTO messages (message_key, client_ref, tenant_id, lane, phone, body)"
        " SELECT $2 || i, $2 || i, $1, $3::message_lane, '+1312555' || lpad(i::text, 4, '0'), 'hi'"
        " FROM generate_series(1, $4) AS i RETURNING id, message_key",
        tenant_id, prefix, lane, n)
    ids = {r["message_key"]: r["id"] for r in rows}
    await repo.transition(conn, ids=list(ids.values()), to=MessageState.SENDING,
                          from_states=[MessageState.QUEUED], reason=None, actor="test", attempts=1)
    return ids


async def deliver(conn: Conn, ids: dict[str, int], *, accept: bool = True,
                  status: str | None = "delivered") -> None:
    """Accept (as the sender does after the provider's answer), then apply ``status``
    receipts (none: None)."""
    if accept:
        await repo.mark_accepted(conn, accepted=[(i, f"p-{k}") for k, i in ids.items()],
                                 actor="test")
    if status is not None:
        await repo.apply_receipts(conn, receipts=[(k, status, None) for k in ids], actor="test")


async def fail(conn: Conn, ids: dict[str, int], reason: str = "unroutable") -> None:
    await repo.transition(conn, ids=list(ids.values()), to=MessageState.FAILED,
                          from_states=[MessageState.SENDING], reason=reason, actor="test")


async def attempts_logged(conn: Conn, *, endpoint_id: int, n: int, timeout_s: float = 30.0) -> None:
    """Wait until the worker has logged ``n`` attempts to the endpoint (it logs each after the
    answer, so the receiver may have a request before its attempt is written)."""
    async with asyncio.timeout(timeout_s):
        while True:
            logged = await conn.fetchval(
                "SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1", endpoint_id)
            if logged >= n:
                return
            await asyncio.sleep(0.05)


def webhooks_worker(database_url: str, log_dir: Path, **extra: object) -> ChildProcess:
    """The real ``hexcast webhooks`` worker (started), with a short retry schedule."""
    settings = make_settings("kafka://127.0.0.1:9", database_url, **{
        "webhook_retry_schedule_s": [0, 0.3, 0.3, 0.3, 0.3, 5], "webhook_timeout_s": 1.0,
        **extra})
    child = hexcast_process("webhooks", ["webhooks"], env=settings.to_env(), log_dir=log_dir)
    child.spawn()
    return child
