"""The simulator's SMSC mode: SMPP 3.4 over TCP beside the HTTP API, on the same ledger.

Binds are checked against ``smpp_system_id``/``smpp_password``; each submit_sm part gets an
id and, when ``registered_delivery`` asks, a receipt (deliver_sm, esm_class 0x04, text and
TLVs) after ``dlr_delay_s`` over a receiver or transceiver bind, some twice
(``callback_dup_rate``), out of order (``callback_shuffle``), UNDELIV for the share
``deliver_fail_rate`` picks. A deliver_sm not answered (connection lost, error status) is sent
again later: receipts and MO messages are never dropped while the process lives. Faults:
``smpp_throttle_per_s``, ``smpp_throttle_after``, ``smpp_queue_full_per_s``,
``smpp_resp_delay_s``, ``smpp_hold_submits``, ``smpp_mute_enquire``, ``smpp_drop_after``,
``smpp_refuse_bind``.

``/smpp/stats`` counts binds (and each kind: ``bind_transceiver``...), ``submits``,
``throttled``, ``queue_full``, ``submits_held``, ``enquire_links`` (and
``enquire_links_unanswered``), ``unbinds``, ``query_sm``, the deliver_sm sent to each kind of
bind (``deliver_sm_to_bind_receiver``...), and two high-water marks per bind:
``max_in_flight_per_bind`` (submit_sm read and not yet answered) and
``max_submits_per_bind_second`` (submit_sm read in one whole second of the monotonic clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import time
from collections import Counter, deque
from types import TracebackType
from typing import Annotated, Any

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hexcast.core.smpp.concat import split
from hexcast.core.smpp.pdu import DeliverSm, Pdu, Status
from providersim.ledger import Sim
from providersim.metrics import count_fault
from providersim.smsc_book import Receipt, SmscBook
from providersim.smsc_session import Session, Throttle

__all__ = ["MoIn", "Smsc", "smpp_router"]

_log = structlog.get_logger("providersim.smsc")
_RETRY_S = 1.0


class Smsc:
    """The SMPP server. ``async with Smsc(sim) as smsc:`` serves on ``smsc.port``."""

    def __init__(self, sim: Sim, host: str | None = None, port: int | None = None) -> None:
        self.sim = sim
        self.host = host or sim.config.smpp_host
        self.port = port if port is not None else (sim.config.smpp_port or 0)
        self.book = SmscBook(sim)
        self.throttle = Throttle()
        self.queue_full = Throttle()
        self.sessions: set[Session] = set()
        self.stats: Counter[str] = Counter()
        self.rng = random.Random(sim.config.seed + 2)
        self._due: list[tuple[float, int, Receipt]] = []
        self._order = itertools.count()
        self._waiting: deque[Receipt] = deque()  # due, but no receiver bound
        self._turn = itertools.count()
        self._drop_count = 0
        self._wake = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._sender = asyncio.create_task(self._deliver_loop())
        _log.info("smsc_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.close()
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Smsc:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(self, reader, writer)
        self.sessions.add(session)
        self.stats["connections"] += 1
        await session.run()

    # --- called by sessions ---------------------------------------------------------------

    def drop_due(self) -> bool:
        """True once ``smpp_drop_after`` submit_sm have been answered since it was set; the
        fault then clears itself (it happens once)."""
        after = self.sim.config.smpp_drop_after
        if after is None:
            self._drop_count = 0
            return False
        self._drop_count += 1
        if self._drop_count < after:
            return False
        self._drop_count = 0
        self.sim.config = self.sim.config.model_copy(update={"smpp_drop_after": None})
        self.stats["dropped_connections"] += 1
        count_fault("smpp_dropped_connection")
        return True

    def push_back(self) -> Status | None:
        """The answer a submit_sm gets instead of being taken, under the faults: throttled
        past ``smpp_throttle_per_s`` or once ``smpp_throttle_after`` were taken, queue full
        past ``smpp_queue_full_per_s``; None when it is taken."""
        cfg = self.sim.config
        after = cfg.smpp_throttle_after
        if not self.throttle.admit(cfg.smpp_throttle_per_s) or (
                after is not None and self.stats["submits"] >= after):
            self.stats["throttled"] += 1
            return Status.ESME_RTHROTTLED
        if not self.queue_full.admit(cfg.smpp_queue_full_per_s):
            self.stats["queue_full"] += 1
            count_fault("smpp_queue_full")
            return Status.ESME_RMSGQFUL
        return None

    def lost(self, session: Session) -> None:
        self.sessions.discard(session)
        for receipt in session.outstanding.values():  # never answered: send again
            self._waiting.append(receipt)
        session.outstanding.clear()
        self._wake.set()

    def receiver_ready(self, session: Session) -> None:
        del session
        self._wake.set()

    def answered(self, session: Session, pdu: Pdu) -> None:
        receipt = session.outstanding.pop(pdu.sequence, None)
        if receipt is None:
            return
        if pdu.status != Status.ESME_ROK:
            self.schedule([receipt], delay=_RETRY_S)
            return
        self.stats["receipts_sent" if receipt.part_id else "mo_sent"] += 1
        if receipt.part_id is not None and receipt.state is not None:
            self.book.settled(receipt.part_id, receipt.state)

    def schedule(self, receipts: list[Receipt], delay: float | None = None) -> None:
        """Queue deliver_sm; receipts with the configured delay and faults."""
        cfg = self.sim.config
        now = time.monotonic()
        for receipt in receipts:
            due = now + (cfg.dlr_delay_s if delay is None else delay)
            copies = 2 if delay is None and self.rng.random() < cfg.callback_dup_rate else 1
            count_fault("duplicate_callback", copies - 1)
            for _ in range(copies):
                jitter = self.rng.random() * max(cfg.dlr_delay_s, 0.05) if cfg.callback_shuffle else 0
                heapq.heappush(self._due, (due + jitter, next(self._order), receipt))
        if receipts:
            count_fault("shuffled_callbacks", int(cfg.callback_shuffle))
            self._wake.set()

    # --- MO messages ----------------------------------------------------------------------

    def mo(self, source: str, dest: str, text: str) -> int:
        """Send ``text`` from handset ``source`` to ``dest`` as deliver_sm (esm_class 0, UDH
        parts when long) to a receiver bind; the number of parts queued."""
        parts = split(text, mode="udh", reference=self.rng.randrange(256))
        system_id = self.sim.config.smpp_system_id
        for part in parts:
            body = DeliverSm(source_addr_ton=1, source_addr_npi=1, source_addr=source.lstrip("+"),
                             dest_addr_ton=1 if dest.startswith("+") else 0, dest_addr_npi=1,
                             destination_addr=dest.lstrip("+"), esm_class=part.esm_class_bits,
                             data_coding=part.data_coding, short_message=part.short_message)
            self.schedule([Receipt(system_id, body)], delay=0.0)
        return len(parts)

    # --- the sending loop -----------------------------------------------------------------

    async def _deliver_loop(self) -> None:
        while True:
            now = time.monotonic()
            while self._due and self._due[0][0] <= now:
                self._waiting.append(heapq.heappop(self._due)[2])
            self._flush_waiting()
            wait = min(0.25, self._due[0][0] - now) if self._due else 0.25
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: it can swallow a cancel
                async with asyncio.timeout(max(wait, 0.001)):
                    await self._wake.wait()

    def _flush_waiting(self) -> None:
        held: deque[Receipt] = deque()
        while self._waiting:
            receipt = self._waiting.popleft()
            receivers = [s for s in self.sessions
                         if s.receives and s.system_id == receipt.system_id]
            if not receivers:
                held.append(receipt)
                continue
            receivers[next(self._turn) % len(receivers)].send(receipt)
        self._waiting = held

    def snapshot(self) -> dict[str, Any]:
        return {**self.stats, "binds_now": sum(1 for s in self.sessions if s.bound),
                "deliver_sm_waiting": len(self._waiting), "deliver_sm_scheduled": len(self._due),
                "deliver_sm_unanswered": sum(len(s.outstanding) for s in self.sessions),
                "port": self.port}


class MoIn(BaseModel):
    """``POST /smpp/mo``: a handset's message to deliver over SMPP."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Annotated[str, Field(alias="from", min_length=1, max_length=20)]
    to: Annotated[str, Field(min_length=1, max_length=20)]
    text: Annotated[str, Field(min_length=1, max_length=1600)]


def smpp_router(smsc: Smsc) -> APIRouter:
    """``POST /smpp/mo`` (queue an MO message) and ``GET /smpp/stats``."""
    router = APIRouter(prefix="/smpp")

    @router.post("/mo", status_code=202)
    async def post_mo(msg: MoIn) -> JSONResponse:
        return JSONResponse({"parts": smsc.mo(msg.source, msg.to, msg.text)}, status_code=202)

    @router.get("/stats")
    async def stats() -> JSONResponse:
        return JSONResponse(smsc.snapshot())

    return router
