"""Delivery receipts: held for their delay, then posted by the dialect's callbacks until the
webhook takes them (never dropped while the process lives)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from providersim.metrics import count_fault

if TYPE_CHECKING:
    from providersim.ledger import Record, Sim

__all__ = ["DLR_CHUNK", "DLR_SENDERS", "Outbox", "iso_now", "receipt_sender"]

_log = structlog.get_logger("sender.simulator")
DLR_CHUNK = 1000
DLR_SENDERS = 4
DLR_BACKOFF_MAX_S = 5.0


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


class Outbox:
    """Delivery receipts: waiting for their delay, then for a successful POST.

    Receipts are never dropped while the process lives (not even by ``/control/reset``);
    a chunk whose POST failed goes back to the front and every sender backs off.
    """

    def __init__(self, seed: int) -> None:
        self.scheduled: deque[tuple[float, list[Record]]] = deque()
        self.ready: deque[list[dict[str, Any]]] = deque()
        self.rng = random.Random(seed)
        self.wake = asyncio.Event()
        self.pending = 0
        self.sent = 0
        self.backoff = 0.0
        self.retry_at = 0.0

    def schedule(self, due: float, records: list[Record]) -> None:
        self.scheduled.append((due, records))
        self.pending += len(records)
        self.wake.set()

    def promote(self, fail_rate: float) -> None:
        """Turn messages whose delay elapsed into receipt chunks of up to DLR_CHUNK."""
        now = time.monotonic()
        if not self.scheduled or self.scheduled[0][0] > now:
            return
        at = iso_now()
        chunk: list[dict[str, Any]] = []
        while self.scheduled and self.scheduled[0][0] <= now:
            for rec in self.scheduled.popleft()[1]:
                failed = fail_rate > 0 and self.rng.random() < fail_rate
                rec.status = "failed" if failed else "delivered"
                count_fault("failed_delivery", int(failed))
                chunk.append(rec.receipt(at))
                if len(chunk) == DLR_CHUNK:
                    self.ready.append(chunk)
                    chunk = []
        if chunk:
            self.ready.append(chunk)

    def take(self) -> list[dict[str, Any]] | None:
        if self.ready and time.monotonic() >= self.retry_at:
            return self.ready.popleft()
        return None

    def done(self, chunk: list[dict[str, Any]], error: str | None, url: str) -> None:
        if error is None:
            self.pending -= len(chunk)
            self.sent += len(chunk)
            if self.backoff:
                _log.warning("sim_dlr_recovered", url=url)
            self.backoff = 0.0
            return
        self.ready.appendleft(chunk)
        if not self.backoff:
            _log.warning("sim_dlr_post_failed", url=url, error=error, pending=self.pending)
        self.backoff = min(DLR_BACKOFF_MAX_S, self.backoff * 2 or 0.1)
        self.retry_at = time.monotonic() + self.backoff

    def idle_s(self) -> float:
        """How long an idle sender may sleep before something could be due."""
        now = time.monotonic()
        due = [self.scheduled[0][0]] if self.scheduled else []
        if self.ready and self.retry_at > now:
            due.append(self.retry_at)
        return min(0.25, max(0.005, min(due, default=now + 0.25) - now))


async def _post(client: httpx.AsyncClient, url: str | None,
                requests: list[dict[str, Any]]) -> str | None:
    """POST a chunk's requests in order, each to its own ``url`` (a per-message callback the
    client named when sending) or ``url``; None on success, else what went wrong (the whole
    chunk is then posted again later: a webhook must take a receipt twice)."""
    for request in requests:
        kwargs = {k: v for k, v in request.items() if k != "url"}
        target = request.get("url") or url
        if target is None:
            return "no callback url"
        try:
            resp = await client.post(target, **kwargs)
        except Exception as exc:  # any failure: the receipts are kept and retried
            return repr(exc)
        if not resp.is_success:
            return f"HTTP {resp.status_code}"
    return None


async def receipt_sender(sim: Sim, client: httpx.AsyncClient) -> None:
    """Post ready receipt chunks, in the dialect's form, until cancelled."""
    from providersim.dialects import dialect_module

    dialect = dialect_module(sim.config.dialect)
    outbox = sim.outbox
    while True:
        outbox.promote(sim.config.deliver_fail_rate)
        chunk = outbox.take()
        if chunk is None:
            outbox.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outbox.wake.wait(), outbox.idle_s())
            continue
        url = sim.config.dlr_url
        requests = _faults(sim, outbox.rng, dialect.callbacks(sim, chunk))
        outbox.done(chunk, await _post(client, url, requests), url or "-")


def _faults(sim: Sim, rng: random.Random, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The callbacks as a real provider may post them: some twice (``callback_dup_rate``), in
    any order (``callback_shuffle``: a "sent" after its "delivered")."""
    rate = sim.config.callback_dup_rate
    out = [r for request in requests
           for r in ([request, request] if rate and rng.random() < rate else [request])]
    count_fault("duplicate_callback", len(out) - len(requests))
    if sim.config.callback_shuffle:
        count_fault("shuffled_callbacks")
        rng.shuffle(out)
    return out
