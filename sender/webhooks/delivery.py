"""The ``hexcast webhooks`` worker: fan out the outbox, send due deliveries signed, record
each attempt and its outcome.

One request per event, or per batch of up to the endpoint's ``batch_size`` events (a JSON
array, each event with its ``id``). 2xx: delivered. 410: the endpoint is disabled at once.
429/503: retried after Retry-After (bounded by the schedule's longest delay) when that is
later than the schedule's next step. Anything else (other statuses, redirects, which are never
followed, timeouts, refused addresses): retried on ``webhook_retry_schedule_s``, and an
endpoint failing for ``webhook_disable_after_s`` is disabled. The host is resolved and checked
before every request and the connection goes to the checked address (``ssrf``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import asyncpg
import httpx

from hexcast.core.db import PG_OUTAGES, Conn, connect_pool, refresh_stats
from hexcast.core.logging import get_logger
from hexcast.core.metrics import refresh_every
from hexcast.core.retry import until_available
from hexcast.core.settings import Settings
from sender.webhooks import metrics, queue
from sender.webhooks.retention import prune
from sender.webhooks.signing import batch_id, signature_header
from sender.webhooks.ssrf import UnsafeUrl, resolve_target

__all__ = ["Outcome", "Request", "WebhookWorker", "build_request", "retry_after_s", "run_webhooks"]

log = get_logger("hexcast.webhooks")
IN_FLIGHT = 500
"""Deliveries claimed and not yet recorded, at most."""
MIN_CLAIM = 100
"""Claim again once this much room is free (a full batch), not for every request done."""
FAN_OUT_LIMIT = 1000
IDLE_S = 0.2
STATS_EVERY_S = 5.0
"""How often the worker checks that the planner's statistics of its two tables are fresh:
on a young outbox (autovacuum lags a holiday run's burst) the fan-out's and the claim's
plans read every row for each one they take."""
PRUNE_EVERY_S = 60.0
PRUNE_LIMIT = 5000


class Request(NamedTuple):
    """One signed request: its ``webhook-id``, the events' ids, the body bytes and headers."""

    webhook_id: str
    event_ids: list[str]
    body: bytes
    headers: dict[str, str]


class Outcome(NamedTuple):
    status: int | None
    error: str | None
    retry_after_s: float | None
    duration_ms: float


def build_request(rows: Sequence[asyncpg.Record | dict[str, Any]], *, now_s: int) -> Request:
    """The request carrying ``rows`` (one endpoint's claimed deliveries), signed with the
    endpoint's secret and, during a rotation's overlap, its previous one."""
    event_ids = [str(r["event_id"]) for r in rows]
    if len(rows) == 1:
        webhook_id, document = event_ids[0], rows[0]["payload"]
    else:
        webhook_id = batch_id(event_ids)
        document = [{"id": r["event_id"], **r["payload"]} for r in rows]
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    keys = [rows[0]["secret"]] + ([rows[0]["old_secret"]] if rows[0]["old_secret"] else [])
    headers = {"content-type": "application/json", "user-agent": "hexcast-webhooks",
               "webhook-id": webhook_id, "webhook-timestamp": str(now_s),
               "webhook-signature": signature_header(keys, webhook_id, now_s, body)}
    return Request(webhook_id, event_ids, body, headers)


def retry_after_s(value: str | None, *, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After value (seconds or an HTTP date), None if unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - now_s)
    except (TypeError, ValueError, IndexError):
        return None


class WebhookWorker:
    """Fan-out, claim, send, record; :meth:`run` until cancelled.

    Requests run as tasks, at most ``concurrency`` at once, and the loop claims again as soon
    as there is room (at most :data:`IN_FLIGHT` deliveries claimed and not yet recorded): an
    endpoint that hangs until the timeout holds up its own deliveries, not everyone's. The
    lease covers the longest a claimed delivery can wait: its turn behind the others in flight,
    then its own request.
    """

    def __init__(self, settings: Settings, pool: asyncpg.Pool, client: httpx.AsyncClient,
                 *, concurrency: int = 50) -> None:
        self._settings = settings
        self._pool = pool
        self._client = client
        self._gate = asyncio.Semaphore(concurrency)
        self._schedule = list(settings.webhook_retry_schedule_s)
        turns = -(-IN_FLIGHT // concurrency)
        self._lease_s = (settings.webhook_timeout_s + 1.0) * (turns + 1) + 5.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._stats_at = 0.0
        self._pruned_at = 0.0

    async def run(self) -> None:
        log.info("webhooks_started", lease_s=self._lease_s)
        try:
            while True:
                try:  # PostgreSQL down: nothing is claimed or sent, and no log line per poll
                    busy = await until_available(self.run_once, errors=PG_OUTAGES, log=log,
                                                 event="webhooks_paused")
                except asyncpg.PostgresError as exc:
                    log.warning("webhooks_retry", error=f"{type(exc).__name__}: {exc}")
                    busy = 0
                if not busy:
                    await self._idle()
        finally:
            for task in self._tasks:
                task.cancel()  # their deliveries stay leased, then come back

    async def run_once(self) -> int:
        """Fan out, then claim what there is room for and start sending it; returns how many
        events were fanned out or deliveries claimed."""
        room = IN_FLIGHT - self._in_flight
        async with self._pool.acquire() as conn:
            await self._fresh_stats(conn)
            await self._prune(conn)
            fanned = await queue.fan_out(conn, limit=FAN_OUT_LIMIT)
            rows = (await queue.claim(conn, limit=room, lease_s=self._lease_s)
                    if room >= MIN_CLAIM or not self._tasks else [])
        for group in _groups(rows):
            self._in_flight += len(group)
            task = asyncio.create_task(self._send_group(group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return fanned + len(rows)

    async def _fresh_stats(self, conn: Conn) -> None:
        if time.monotonic() - self._stats_at < STATS_EVERY_S:
            return
        self._stats_at = time.monotonic()
        for table in ("webhook_outbox", "webhook_deliveries"):
            await refresh_stats(conn, table=table)

    async def _prune(self, conn: Conn) -> None:
        """Retention: a batch of old events and attempts a minute, more while a batch is full."""
        if time.monotonic() - self._pruned_at < PRUNE_EVERY_S:
            return
        pruned = await prune(conn, older_than_s=self._settings.webhook_retention_s,
                             limit=PRUNE_LIMIT)
        if max(pruned) < PRUNE_LIMIT:
            self._pruned_at = time.monotonic()
        if any(pruned):
            log.info("webhooks_pruned", events=pruned.events, attempts=pruned.attempts)

    async def drain(self) -> None:
        """Wait for every request started (benchmarks, tests)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _idle(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=IDLE_S, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(IDLE_S)

    async def _send_group(self, rows: list[asyncpg.Record]) -> None:
        try:
            async with self._gate:
                request = build_request(rows, now_s=int(time.time()))
                outcome = await self._post(rows[0]["url"], request)
            await self._record(rows, request, outcome)
        except PG_OUTAGES + (asyncpg.PostgresError,) as exc:  # the lease brings them back
            log.warning("webhooks_record_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._in_flight -= len(rows)

    async def _post(self, url: str, request: Request) -> Outcome:
        started = time.perf_counter()
        try:
            response = await self._client.post(await self._pinned(url), content=request.body,
                                               headers={**request.headers, "host": urlsplit(url).netloc},
                                               extensions=_tls_name(url))
        except (UnsafeUrl, httpx.HTTPError) as exc:
            return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], None, _ms(started))
        wait = retry_after_s(response.headers.get("retry-after"), now_s=time.time())
        error = None if response.is_success else f"HTTP {response.status_code}"
        return Outcome(response.status_code, error, wait, _ms(started))

    async def _pinned(self, url: str) -> str:
        """``url`` aimed at the address its host resolves to now, once that address is checked
        (as is when private addresses are allowed: nothing to check)."""
        if self._settings.webhook_allow_private_urls:
            return url
        return (await resolve_target(url, allow_private=False)).pinned(url)

    async def _record(self, rows: list[asyncpg.Record], request: Request, outcome: Outcome) -> None:
        endpoint_id, lease = rows[0]["endpoint_id"], rows[0]["lease_until"]
        ids = [r["id"] for r in rows]
        async with self._pool.acquire() as conn:
            if outcome.status is not None and 200 <= outcome.status < 300:
                await queue.succeeded(conn, endpoint_id=endpoint_id, webhook_id=request.webhook_id,
                                      event_ids=request.event_ids, status=outcome.status,
                                      duration_ms=outcome.duration_ms, ids=ids, lease=lease)
                metrics.count_attempt(rows[0]["tenant_id"], endpoint_id, outcome.status)
                return
            async with conn.transaction():
                await queue.log_attempt(
                    conn, endpoint_id=endpoint_id, webhook_id=request.webhook_id,
                    event_ids=request.event_ids, status=outcome.status, error=outcome.error,
                    duration_ms=outcome.duration_ms)
                given_up = await queue.retry(conn, ids=ids, lease=lease, schedule=self._schedule,
                                             error=outcome.error or "failed",
                                             at_least_s=self._wait(outcome))
                failing = await queue.mark_failing(
                    conn, endpoint_id=endpoint_id, ok=False,
                    disable_after_s=self._settings.webhook_disable_after_s)
                await self._disable(conn, endpoint_id, outcome, failing)
        metrics.count_attempt(rows[0]["tenant_id"], endpoint_id, outcome.status, given_up)

    async def _disable(self, conn: Conn, endpoint_id: int, outcome: Outcome, failing: bool) -> None:
        """A 410 disables the endpoint at once; so does failing for ``webhook_disable_after_s``."""
        reason = ("the endpoint answered 410 Gone" if outcome.status == 410 else
                  "failing since more than webhook_disable_after_s" if failing else None)
        if reason is not None and await queue.disable(conn, endpoint_id=endpoint_id, reason=reason):
            log.warning("webhook_endpoint_disabled", endpoint_id=endpoint_id, reason=reason)

    def _wait(self, outcome: Outcome) -> float:
        """The Retry-After of a 429 or 503, bounded by the schedule's longest delay; else 0."""
        if outcome.status not in (429, 503) or outcome.retry_after_s is None:
            return 0.0
        return min(outcome.retry_after_s, max(self._schedule))


async def run_webhooks(settings: Settings) -> None:
    """The process: a pool, one HTTP client (connection pool, no redirects), the loop."""
    pool = await connect_pool(settings.database_url, max_size=8)
    client = httpx.AsyncClient(
        follow_redirects=False, timeout=settings.webhook_timeout_s, trust_env=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=32))
    gauges = asyncio.create_task(refresh_every(metrics.REFRESH_S, partial(_refresh_gauges, pool),
                                               name="webhook_backlog"))
    try:
        await WebhookWorker(settings, pool, client).run()
    finally:
        gauges.cancel()
        await client.aclose()
        await pool.close()


async def _refresh_gauges(pool: asyncpg.Pool) -> None:
    """The backlog and failing endpoints, from the webhook tables (small, indexed)."""
    async with pool.acquire() as conn:
        metrics.show_backlog(await queue.backlog(conn))
        metrics.show_failing(await queue.failing_endpoints(conn))


def _groups(rows: Sequence[asyncpg.Record]) -> list[list[asyncpg.Record]]:
    """``rows`` by endpoint, in chunks of the endpoint's batch size, oldest event first."""
    by_endpoint: dict[int, list[asyncpg.Record]] = {}
    for row in rows:
        by_endpoint.setdefault(row["endpoint_id"], []).append(row)
    return [chunk[i:i + chunk[0]["batch_size"]]
            for chunk in by_endpoint.values() for i in range(0, len(chunk), chunk[0]["batch_size"])]


def _tls_name(url: str) -> dict[str, object]:
    """The TLS server name (SNI and certificate check) of an https URL sent to its address."""
    parts = urlsplit(url)
    return {"sni_hostname": parts.hostname} if parts.scheme == "https" and parts.hostname else {}


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
