"""Provider simulator: a real HTTP server mimicking an SMS provider's batch API.

In-memory ledger deduplicated on ``client_ref``, token-bucket rate limit, fault injection
(503s, slow answers, unreadable answers to accepted requests) and delivery receipts posted to
a webhook. Used by demos, integration tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import httpx
import structlog
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["UNDELIVERABLE_CODE", "SimConfig", "callback_form", "create_sim_app", "run_sim"]

UNDELIVERABLE_CODE = "30003"
"""Twilio's 'unreachable destination handset', what the simulator reports for a failed one."""


def callback_form(*, provider_message_id: str, status: str, to: str) -> dict[str, str]:
    """The form a single-message (Twilio-like) provider posts for a message's final state."""
    form = {"MessageSid": provider_message_id, "To": to,
            "MessageStatus": "delivered" if status == "delivered" else "undelivered"}
    if status != "delivered":
        form["ErrorCode"] = UNDELIVERABLE_CODE
    return form

_log = structlog.get_logger("sender.simulator")

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BATCH = 1000
DLR_CHUNK = 1000
DLR_SENDERS = 4
DLR_BACKOFF_MAX_S = 5.0

Rate = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Millis = Annotated[int, Field(ge=0)]


class SimConfig(BaseModel):
    """How the simulated provider behaves. Parts of it can be changed live via ``/control``."""

    model_config = ConfigDict(extra="forbid")

    rate_per_s: Rate = 1000.0
    dlr_url: str | None = None
    dlr_delay_s: Annotated[float, Field(ge=0)] = 0.5
    dlr_token: str = "dlr-token"
    token: str = "sim-token"
    mode: Literal["batch", "single"] = "batch"
    lookup: bool = True
    fail_rate: Probability = 0.0
    garble_rate: Probability = 0.0  # accepted, then answered 200 with an unreadable body
    latency_ms: Millis = 0
    deliver_fail_rate: Probability = 0.0
    retry_after_s: Annotated[int, Field(ge=0)] = 0  # fixed Retry-After on 429s; 0 = computed
    seed: int = 0


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_ref: Annotated[str, Field(min_length=1, max_length=128)]
    to: str
    body: Annotated[str, Field(min_length=1, max_length=1600)]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: Annotated[list[MessageIn], Field(min_length=1, max_length=MAX_BATCH)]


class ControlIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_per_s: Rate | None = None
    fail_rate: Probability | None = None
    garble_rate: Probability | None = None
    latency_ms: Millis | None = None
    deliver_fail_rate: Probability | None = None
    lookup: bool | None = None
    dlr_url: str | None = None


def _iso_now() -> str:
    return datetime.now(UTC).isoformat()


_LEDGER_FIELDS = ("seq", "client_ref", "provider_message_id", "to", "body", "accepted_at")


class _Record:
    """One accepted message in the ledger."""

    __slots__ = (*_LEDGER_FIELDS, "status")

    def __init__(self, seq: int, msg: MessageIn, accepted_at: str, pmid: str) -> None:
        self.seq = seq
        self.client_ref = msg.client_ref
        self.provider_message_id = pmid
        self.to = msg.to
        self.body = msg.body
        self.accepted_at = accepted_at
        self.status = "accepted"

    def result(self, duplicate: bool) -> dict[str, Any]:
        return {
            "client_ref": self.client_ref,
            "provider_message_id": self.provider_message_id,
            "status": "accepted",
            "duplicate": duplicate,
        }

    def ledger_item(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _LEDGER_FIELDS}

    def receipt(self, at: str) -> dict[str, Any]:
        return {
            "provider_message_id": self.provider_message_id,
            "client_ref": self.client_ref,
            "status": self.status,
            "error": "undeliverable" if self.status == "failed" else None,
            "at": at,
            "to": self.to,
        }


class _TokenBucket:
    """Destinations per second, burst ``max(rate, 1000)``."""

    def __init__(self, rate: float) -> None:
        self.tokens = self.stamp = 0.0
        self.set_rate(rate)
        self.fill()

    def set_rate(self, rate: float) -> None:
        if self.stamp:
            self.take(0)  # accrue at the old rate first
        self.rate, self.burst = rate, max(rate, 1000.0)
        self.tokens = min(self.tokens, self.burst)

    def fill(self) -> None:
        self.tokens, self.stamp = self.burst, time.monotonic()

    def take(self, n: int) -> int:
        """Take ``n`` tokens; 0 on success, else whole seconds to wait (>= 1)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return 0
        return max(1, math.ceil((n - self.tokens) / self.rate))


class _Outbox:
    """Delivery receipts: waiting for their delay, then for a successful POST.

    Receipts are never dropped while the process lives (not even by ``/control/reset``);
    a chunk whose POST failed goes back to the front and every sender backs off.
    """

    def __init__(self, seed: int) -> None:
        self.scheduled: deque[tuple[float, list[_Record]]] = deque()
        self.ready: deque[list[dict[str, Any]]] = deque()
        self.rng = random.Random(seed)
        self.wake = asyncio.Event()
        self.pending = 0
        self.sent = 0
        self.backoff = 0.0
        self.retry_at = 0.0

    def schedule(self, due: float, records: list[_Record]) -> None:
        self.scheduled.append((due, records))
        self.pending += len(records)
        self.wake.set()

    def promote(self, fail_rate: float) -> None:
        """Turn messages whose delay elapsed into receipt chunks of up to DLR_CHUNK."""
        now = time.monotonic()
        if not self.scheduled or self.scheduled[0][0] > now:
            return
        at = _iso_now()
        chunk: list[dict[str, Any]] = []
        while self.scheduled and self.scheduled[0][0] <= now:
            for rec in self.scheduled.popleft()[1]:
                failed = fail_rate > 0 and self.rng.random() < fail_rate
                rec.status = "failed" if failed else "delivered"
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


class _Sim:
    """All mutable state of one simulator process."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.bucket = _TokenBucket(config.rate_per_s)
        self.outbox = _Outbox(config.seed + 1)
        # Ids look like "sim-<32 hex>": a random per-process half and a counter half,
        # unique across resets and restarts without a urandom call per message.
        self.id_prefix = "sim-" + uuid.uuid4().hex[:16]
        self.id_counter = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        self.records: list[_Record] = []
        self.by_ref: dict[str, _Record] = {}
        self.destinations: set[str] = set()
        self.duplicates = 0
        self.requests = 0
        self.rate_limited = 0
        self.requests_while_limited = 0
        self.limited_until = 0.0
        self.injected = 0
        self.garbled = 0
        self.fault_rng = random.Random(self.config.seed)
        self.bucket.fill()

    def gate(self, n: int) -> JSONResponse | None:
        """Count the request, then inject a fault or rate-limit it; None lets it through."""
        self.requests += 1
        now = time.monotonic()
        if now < self.limited_until:  # the client ignored a Retry-After it was given
            self.requests_while_limited += 1
        if self.fault_rng.random() < self.config.fail_rate:
            self.injected += 1
            return JSONResponse({"error": "injected"}, status_code=503)
        wait_s = self.bucket.take(n)
        if wait_s:
            wait_s = self.config.retry_after_s or wait_s
            self.rate_limited += 1
            self.limited_until = now + wait_s
            headers = {"Retry-After": str(wait_s)}
            return JSONResponse({"error": "rate_limited"}, status_code=429, headers=headers)
        return None

    def garbled_answer(self) -> Response | None:
        """With ``garble_rate``: a 200 whose body is cut off (the messages are already in the
        ledger), as a proxy or a provider bug may answer. None: answer normally."""
        if not (self.config.garble_rate and self.fault_rng.random() < self.config.garble_rate):
            return None
        self.garbled += 1
        return Response(b'{"results": [{"client_ref": ', media_type="application/json")

    def accept(self, messages: list[MessageIn]) -> list[dict[str, Any]]:
        """Ledger every valid, new message; results in request order."""
        now_iso = _iso_now()
        results: list[dict[str, Any]] = []
        new: list[_Record] = []
        for msg in messages:
            if not _E164.match(msg.to):
                results.append(_rejected(msg.client_ref))
                continue
            rec = self.by_ref.get(msg.client_ref)
            if rec is not None:
                self.duplicates += 1
                results.append(rec.result(True))
                continue
            pmid = f"{self.id_prefix}{next(self.id_counter):016x}"
            rec = _Record(len(self.records) + 1, msg, now_iso, pmid)
            self.records.append(rec)
            self.by_ref[rec.client_ref] = rec
            self.destinations.add(rec.to)
            new.append(rec)
            results.append(rec.result(False))
        if new and self.config.dlr_url is not None:
            self.outbox.schedule(time.monotonic() + self.config.dlr_delay_s, new)
        return results

    def stats(self) -> dict[str, Any]:
        return {
            "total": len(self.records),
            "unique_destinations": len(self.destinations),
            "duplicates_rejected": self.duplicates,
            "requests": self.requests,
            "rate_limited": self.rate_limited,
            "requests_while_limited": self.requests_while_limited,
            "injected_failures": self.injected,
            "garbled_answers": self.garbled,
            "receipts_sent": self.outbox.sent,
            "receipts_pending": self.outbox.pending,
        }


def _rejected(client_ref: str) -> dict[str, Any]:
    return {"client_ref": client_ref, "status": "rejected", "error": "invalid_destination"}


async def _post(
    client: httpx.AsyncClient, url: str, token: str, chunk: list[Any], *, single: bool
) -> str | None:
    """POST one chunk of receipts; None on success, else what went wrong.

    Batch mode posts the chunk as one JSON batch; single mode (Twilio-like) posts one
    form-encoded status callback per message, which carries only the provider's message id.
    """
    headers = {"Authorization": f"Bearer {token}"}
    bodies: list[dict[str, Any]] = (
        [{"data": callback_form(provider_message_id=r["provider_message_id"], status=r["status"],
                                to=r["to"])} for r in chunk]
        if single else [{"json": {"receipts": chunk}}]
    )
    for body in bodies:
        try:
            resp = await client.post(url, headers=headers, **body)
        except Exception as exc:  # any failure: the receipts are kept and retried
            return repr(exc)
        if not resp.is_success:
            return f"HTTP {resp.status_code}"
    return None


async def _receipt_sender(sim: _Sim, client: httpx.AsyncClient) -> None:
    """Post ready receipt chunks until cancelled."""
    outbox = sim.outbox
    while True:
        outbox.promote(sim.config.deliver_fail_rate)
        url = sim.config.dlr_url
        chunk = outbox.take() if url is not None else None
        if url is None or chunk is None:
            outbox.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outbox.wake.wait(), outbox.idle_s())
            continue
        single = sim.config.mode == "single"
        outbox.done(chunk, await _post(client, url, sim.config.dlr_token, chunk, single=single), url)


def _single_response(result: dict[str, Any]) -> JSONResponse:
    return JSONResponse(result, status_code=400 if result["status"] == "rejected" else 201)


async def _respond(sim: _Sim, resp: Response) -> Response:
    """Answer after the configured latency (the work is already done: a slow ack)."""
    if sim.config.latency_ms:
        await asyncio.sleep(sim.config.latency_ms / 1000.0)
    return resp


def _v1_router(sim: _Sim) -> APIRouter:
    async def auth(authorization: Annotated[str | None, Header()] = None) -> None:
        if authorization != f"Bearer {sim.config.token}":
            raise HTTPException(status_code=401, detail="unauthorized")

    router = APIRouter(prefix="/v1", dependencies=[Depends(auth)])

    # gate() answers 503/429 itself; otherwise the messages are ledgered, then answered.
    async def post_batch(batch: BatchIn) -> Response:
        denied = sim.gate(len(batch.messages))
        if denied is not None:
            return await _respond(sim, denied)
        results = sim.accept(batch.messages)
        return await _respond(sim, sim.garbled_answer() or JSONResponse({"results": results}))

    async def post_message(msg: MessageIn) -> Response:
        denied = sim.gate(1)
        if denied is not None:
            return await _respond(sim, denied)
        result = sim.accept([msg])[0]
        return await _respond(sim, sim.garbled_answer() or _single_response(result))

    async def by_ref(client_ref: str) -> Response:
        rec = sim.by_ref.get(client_ref) if sim.config.lookup else None
        if rec is None:
            return await _respond(sim, JSONResponse({"error": "not_found"}, status_code=404))
        return await _respond(sim, JSONResponse({**rec.ledger_item(), "status": rec.status}))

    if sim.config.mode == "batch":
        router.add_api_route("/batches", post_batch, methods=["POST"])
    else:
        router.add_api_route("/messages", post_message, methods=["POST"], status_code=201)
    router.add_api_route("/messages/by-ref/{client_ref}", by_ref, methods=["GET"])
    return router


def _open_router(sim: _Sim) -> APIRouter:
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @router.get("/ledger")
    async def ledger(
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> JSONResponse:
        items = [r.ledger_item() for r in sim.records[after : after + limit]]
        body = {"items": items, "total": len(sim.records), "duplicates_rejected": sim.duplicates}
        return JSONResponse(body)

    @router.get("/ledger/stats")
    async def ledger_stats() -> JSONResponse:
        return JSONResponse(sim.stats())

    @router.post("/control")
    async def control(update: ControlIn) -> JSONResponse:
        changes = update.model_dump(exclude_unset=True)
        sim.config = SimConfig.model_validate({**sim.config.model_dump(), **changes})
        if "rate_per_s" in changes:
            sim.bucket.set_rate(sim.config.rate_per_s)
        if "dlr_url" in changes:
            sim.outbox.retry_at = 0.0
        sim.outbox.wake.set()
        return JSONResponse(sim.config.model_dump())

    @router.post("/control/reset")
    async def control_reset() -> JSONResponse:
        sim.reset()
        return JSONResponse(sim.stats())

    return router


def create_sim_app(config: SimConfig) -> FastAPI:
    """The simulator as an ASGI app; receipts are posted by tasks run in its lifespan."""
    sim = _Sim(config)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=DLR_SENDERS, max_keepalive_connections=DLR_SENDERS)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
            sim.outbox.wake = asyncio.Event()  # bound to the running loop
            tasks = [asyncio.create_task(_receipt_sender(sim, client)) for _ in range(DLR_SENDERS)]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(title="hexcast provider simulator", lifespan=lifespan)
    app.include_router(_v1_router(sim))
    app.include_router(_open_router(sim))
    return app


def run_sim(config: SimConfig, host: str, port: int) -> None:
    """Serve the simulator until interrupted (blocking)."""
    uvicorn.run(create_sim_app(config), host=host, port=port, log_level="warning", access_log=False)
