"""Provider simulator: a real HTTP server mimicking an SMS provider's API in one of several
dialects (``providersim.dialects``).

In-memory ledger deduplicated on the client reference, token-bucket rate limit, fault
injection (503s, slow answers, unreadable answers to accepted requests) and delivery receipts
posted to a webhook. Used by demos, integration tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import uvicorn
from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import JSONResponse

from providersim.config import ControlIn, SimConfig
from providersim.dialects import dialect_module
from providersim.ledger import Sim
from providersim.outbox import DLR_SENDERS, receipt_sender
from providersim.smsc import Smsc, smpp_router

__all__ = ["SimConfig", "create_sim_app", "run_sim"]


def _open_router(sim: Sim) -> APIRouter:
    router = APIRouter()

    @router.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @router.get("/ledger")
    async def ledger(
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        extra: bool = False,
    ) -> JSONResponse:
        items = [r.ledger_item(extra) for r in sim.records[after : after + limit]]
        body = {"items": items, "total": len(sim.records), "duplicates_rejected": sim.duplicates}
        return JSONResponse(body)

    @router.get("/ledger/stats")
    async def ledger_stats() -> JSONResponse:
        return JSONResponse(sim.stats())

    @router.post("/control")
    async def control(update: ControlIn) -> JSONResponse:
        changes = update.model_dump(exclude_unset=True)
        sim.config = SimConfig.model_validate({**sim.config.model_dump(), **changes})
        if "rate_per_s" in changes or "rate_burst" in changes:
            sim.bucket.set_rate(sim.config.rate_per_s, sim.config.rate_burst)
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
    """The simulator as an ASGI app; receipts are posted by tasks run in its lifespan. With
    ``smpp_port`` set it is an SMSC too (``providersim.smsc``), serving from the lifespan."""
    sim = Sim(config)
    smsc = Smsc(sim) if config.smpp_port is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=DLR_SENDERS, max_keepalive_connections=DLR_SENDERS)
        async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
            sim.outbox.wake = asyncio.Event()  # bound to the running loop
            tasks = [asyncio.create_task(receipt_sender(sim, client)) for _ in range(DLR_SENDERS)]
            if smsc is not None:
                await smsc.start()
            try:
                yield
            finally:
                if smsc is not None:
                    await smsc.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(title="hexcast provider simulator", lifespan=lifespan)
    app.include_router(dialect_module(config.dialect).router(sim))
    app.include_router(_open_router(sim))
    if smsc is not None:
        app.include_router(smpp_router(smsc))
    return app


def run_sim(
    config: SimConfig, host: str, port: int, *,
    ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
) -> None:
    """Serve the simulator until interrupted (blocking). With ``ssl_certfile`` (and its
    ``ssl_keyfile``, unless the key is in the same file) it serves HTTPS: a client that builds
    ``https://{host}`` URLs only (the Vonage SDK) can then be pointed at it."""
    uvicorn.run(create_sim_app(config), host=host, port=port, log_level="warning", access_log=False,
                ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
