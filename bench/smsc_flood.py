"""The simulator's own SMPP limit: one bind, a window of 50, short messages as fast as it answers.

The client lives in the bench process (``hexcast.core.smpp`` over asyncio, no sender, no
database, no broker): it binds as a transmitter to a provider-sim started with ``--smpp-port``,
submits ``count`` one-part messages to distinct numbers without asking for receipts, keeps
``window`` of them unanswered, and times first submit → last ``submit_sm_resp``. Every PDU is
encoded before the clock starts and answers are read by header only, so the client costs as
little as it can and the figure is the SMSC's (it still shares the 2 cores with the client).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from bench.common import Procs, bench_settings, loadavg
from bench.cpu import snapshot
from bench.providers import DialectResult
from hexcast.core.errors import SmppError
from hexcast.core.smpp.pdu import (
    Bind,
    Command,
    Framer,
    Pdu,
    Sequences,
    Status,
    SubmitSm,
    encode,
    header,
)
from hexcast.devstack.procs import free_port, wait_http

__all__ = ["CLIENT", "Flood", "destination", "flood", "run_limit", "submits"]

CLIENT = "bench-client"
"""The CPU group of the client's event-loop thread (counted like a sender)."""


@dataclass
class Flood:
    """What one flood measured: answers, refusals, seconds, the client's CPU seconds."""

    answered: int = 0
    refused: int = 0
    wall_s: float = 0.0
    client_cpu_s: float = 0.0


def destination(n: int) -> str:
    """The ``n``-th distinct number (international, without its ``+``): +1 555 and 7 digits."""
    if not 0 <= n < 10_000_000:
        raise ValueError(f"destination {n}: 0..9,999,999 only")
    return f"1555{n:07d}"


def submits(count: int, first_sequence: int = 2, *, receipts: bool = False) -> list[bytes]:
    """``count`` encoded submit_sm, one short GSM-7 part each, to distinct numbers, numbered
    from ``first_sequence`` (1 is the bind's); a final receipt asked for only with ``receipts``
    (the SMSC then builds and schedules one per submit, as for the sender's)."""
    return [encode(Pdu(Command.SUBMIT_SM, 0, first_sequence + n, SubmitSm(
        source_addr_ton=1, source_addr_npi=1, source_addr="13125550100", dest_addr_ton=1,
        dest_addr_npi=1, destination_addr=destination(n), registered_delivery=int(receipts),
        short_message=f"limit {n}".encode()))) for n in range(count)]


async def flood(host: str, port: int, count: int, *, window: int = 50, receipts: bool = False,
                system_id: str = "hexcast", password: str = "secret") -> Flood:
    """Bind, submit ``count`` messages keeping ``window`` unanswered, unbind."""
    frames = submits(count, receipts=receipts)
    reader, writer = await asyncio.open_connection(host, port)
    framer, found = Framer(), Flood()
    try:
        writer.write(encode(Pdu(Command.BIND_TRANSMITTER, 0, Sequences().next(), Bind(system_id, password))))
        bound = await _next_frame(reader, framer)
        if header(bound)[2] != Status.ESME_ROK:
            raise SmppError(f"bind refused: 0x{header(bound)[2]:08X}", status=header(bound)[2])
        cpu, started = time.thread_time(), time.perf_counter()
        sent = min(window, count)
        writer.write(b"".join(frames[:sent]))
        while found.answered + found.refused < count:
            data = await reader.read(65536)
            if not data:
                raise SmppError("the SMSC closed the connection", status=Status.ESME_RSYSERR)
            for frame in framer.feed(data):
                _, command, status, sequence = header(frame)
                if command == Command.ENQUIRE_LINK:
                    writer.write(encode(Pdu(Command.ENQUIRE_LINK_RESP, 0, sequence)))
                    continue
                if command != Command.SUBMIT_SM_RESP:
                    continue
                if status == Status.ESME_ROK:
                    found.answered += 1
                else:
                    found.refused += 1
                if sent < count:
                    writer.write(frames[sent])
                    sent += 1
            await writer.drain()
        found.wall_s, found.client_cpu_s = time.perf_counter() - started, time.thread_time() - cpu
        writer.write(encode(Pdu(Command.UNBIND, 0, count + 2)))
        await writer.drain()
    finally:
        writer.close()
    return found


async def _next_frame(reader: asyncio.StreamReader, framer: Framer) -> bytes:
    while True:
        data = await reader.read(65536)
        if not data:
            raise SmppError("the SMSC closed the connection", status=Status.ESME_RSYSERR)
        frames = framer.feed(data)
        if frames:
            return frames[0]


def run_limit(broker_url: str, dsn: str, name: str, *, count: int, round_no: int = 0,
              window: int = 50) -> DialectResult:
    """A provider-sim with an SMSC, flooded by :func:`flood`; its result as a row of the
    table (``recipients`` = submit_sm, the client's CPU under :data:`CLIENT`)."""
    settings = bench_settings(broker_url, dsn)
    port = free_port()
    result = DialectResult(name, round_no, count, loadavg_start=loadavg())
    with Procs(settings) as procs:
        sim = procs.start("provider-sim", ["provider-sim", "--smpp-port", str(port)])
        wait_http(f"{settings.provider_url}/health", child=sim)
        cpu = snapshot({"provider-sim": sim.pid})
        found = asyncio.run(flood("127.0.0.1", port, count, window=window))
        result.cpu_s, result.busy = snapshot({"provider-sim": sim.pid}).since(cpu)
        client = round(found.client_cpu_s, 2)  # of the bench process: unattributed so far
        result.cpu_s |= {CLIENT: client,
                         "unattributed": round(max(0.0, result.cpu_s["unattributed"] - client), 2)}
        time.sleep(0.5)
        with httpx.Client(base_url=settings.provider_url, timeout=30) as http:
            stats = http.get("/ledger/stats").json()
    result.accepted, result.wall_s = found.answered, found.wall_s
    result.rate, result.requests = found.answered / max(found.wall_s, 1e-9), count
    result.duplicates = stats["total"] - stats["unique_destinations"] + stats["duplicates_rejected"]
    result.states = {"ledgered": stats["total"]}
    result.loadavg_end = loadavg()
    return result
