"""The simulator's state: the ledger of accepted messages (deduplicated on the client
reference), its rate limit and the faults it injects. Dialects turn their requests into
:class:`MessageIn` and answer from what :meth:`Sim.accept` returns."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from providersim.config import SimConfig
from providersim.journal import LedgerJournal
from providersim.metrics import count_fault, count_request
from providersim.outbox import Outbox, iso_now

__all__ = ["MAX_BATCH", "MessageIn", "Record", "Sim", "TokenBucket", "rejected", "respond"]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BATCH = 1000

Rate = Annotated[float, Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Millis = Annotated[int, Field(ge=0)]



class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_ref: Annotated[str, Field(min_length=1, max_length=128)]
    to: str
    body: Annotated[str, Field(min_length=1, max_length=1600)]


_LEDGER_FIELDS = ("seq", "client_ref", "provider_message_id", "to", "body", "accepted_at")


class Record:
    """One accepted message in the ledger."""

    __slots__ = (*_LEDGER_FIELDS, "extra", "status")

    def __init__(self, seq: int, msg: MessageIn, accepted_at: str, pmid: str,
                 extra: dict[str, Any] | None = None) -> None:
        self.seq = seq
        self.extra = extra or {}  # what a dialect keeps for its receipts (a callback url, parts)
        self.client_ref = msg.client_ref
        self.provider_message_id = pmid
        self.to = msg.to
        self.body = msg.body
        self.accepted_at = accepted_at
        self.status = "accepted"

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Record:
        """A record read back from the journal (:meth:`ledger_item` with ``extra``)."""
        msg = MessageIn.model_construct(client_ref=item["client_ref"], to=item["to"], body=item["body"])
        return cls(int(item["seq"]), msg, str(item["accepted_at"]), str(item["provider_message_id"]),
                   item.get("extra") or None)

    def result(self, duplicate: bool) -> dict[str, Any]:
        return {
            "client_ref": self.client_ref,
            "provider_message_id": self.provider_message_id,
            "status": "accepted",
            "duplicate": duplicate,
        }

    def ledger_item(self, extra: bool = False) -> dict[str, Any]:
        """The record as ``GET /ledger`` lists it; with ``extra``, what its dialect kept too (the
        sender, a validity period), which ``GET /ledger?extra=true`` asks for."""
        item = {name: getattr(self, name) for name in _LEDGER_FIELDS}
        return {**item, "extra": self.extra} if extra else item

    def receipt(self, at: str) -> dict[str, Any]:
        found = {
            "provider_message_id": self.provider_message_id,
            "client_ref": self.client_ref,
            "status": self.status,
            "error": "undeliverable" if self.status == "failed" else None,
            "at": at,
            "to": self.to,
        }
        return {**found, "extra": self.extra} if self.extra else found


class TokenBucket:
    """Destinations per second, burst ``max(rate, 1000)`` unless given."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.tokens = self.stamp = 0.0
        self.set_rate(rate, burst)
        self.fill()

    def set_rate(self, rate: float, burst: float | None = None) -> None:
        if self.stamp:
            self.take(0)  # accrue at the old rate first
        self.rate, self.burst = rate, burst or max(rate, 1000.0)
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


class Sim:
    """All mutable state of one simulator process."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.bucket = TokenBucket(config.rate_per_s, config.rate_burst)
        self.outbox = Outbox(config.seed + 1)
        # Ids look like "sim-<32 hex>": a random per-process half and a counter half,
        # unique across resets and restarts without a urandom call per message.
        self.id_prefix = "sim-" + uuid.uuid4().hex[:16]
        self.id_counter = itertools.count(1)
        self.journal = LedgerJournal(config.ledger_path) if config.ledger_path else None
        self.reset(forget=False)

    def reset(self, *, forget: bool = True) -> None:
        """Empty the ledger and the counters; with a journal, ``forget`` deletes it too, and
        without ``forget`` (a process starting) the ledger is read back from it."""
        self.records: list[Record] = []
        self.by_ref: dict[str, Record] = {}
        self.destinations: set[str] = set()
        if self.journal is not None and forget:
            self.journal.truncate()
        for item in self.journal.read() if self.journal is not None else ():
            self._keep(Record.from_item(item))
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
            count_request(self.config.dialect, "error")
            count_fault("error")
            return JSONResponse({"error": "injected"}, status_code=503)
        wait_s = self.bucket.take(n)
        if wait_s:
            wait_s = self.config.retry_after_s or wait_s
            self.rate_limited += 1
            self.limited_until = now + wait_s
            count_request(self.config.dialect, "throttled")
            headers = {"Retry-After": str(wait_s)}
            return JSONResponse({"error": "rate_limited"}, status_code=429, headers=headers)
        count_request(self.config.dialect, "ok")
        return None

    def garbled_answer(self) -> Response | None:
        """With ``garble_rate``: a 200 whose body is cut off (the messages are already in the
        ledger), as a proxy or a provider bug may answer. None: answer normally."""
        if not (self.config.garble_rate and self.fault_rng.random() < self.config.garble_rate):
            return None
        self.garbled += 1
        count_fault("garbled")
        return Response(b'{"results": [{"client_ref": ', media_type="application/json")

    def accept(
        self, messages: list[MessageIn], *, extras: list[dict[str, Any]] | None = None,
        new_id: Callable[[], str] | None = None, post_receipts: bool = True,
    ) -> list[dict[str, Any]]:
        """Ledger every valid, new message; results in request order. A dialect may keep
        ``extras`` with each message (for its receipts) and name its ids (``new_id``); the SMSC
        sends its own receipts (``post_receipts=False``)."""
        now_iso = iso_now()
        results: list[dict[str, Any]] = []
        new: list[Record] = []
        for n, msg in enumerate(messages):
            if not _E164.match(msg.to):
                results.append(rejected(msg.client_ref))
                continue
            rec = self.by_ref.get(msg.client_ref)
            if rec is not None:
                self.duplicates += 1
                results.append(rec.result(True))
                continue
            pmid = new_id() if new_id else f"{self.id_prefix}{next(self.id_counter):016x}"
            rec = Record(len(self.records) + 1, msg, now_iso, pmid, extras[n] if extras else None)
            self._keep(rec)
            new.append(rec)
            results.append(rec.result(False))
        if new and self.journal is not None:
            self.journal.append([r.ledger_item(extra=True) for r in new])
        if new and post_receipts and (self.config.dlr_url is not None or extras):
            self.outbox.schedule(time.monotonic() + self.config.dlr_delay_s, new)
        return results

    def _keep(self, rec: Record) -> None:
        self.records.append(rec)
        self.by_ref[rec.client_ref] = rec
        self.destinations.add(rec.to)

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


def rejected(client_ref: str) -> dict[str, Any]:
    return {"client_ref": client_ref, "status": "rejected", "error": "invalid_destination"}


async def respond(sim: Sim, resp: Response) -> Response:
    """Answer after the configured latency (the work is already done: a slow ack)."""
    if sim.config.latency_ms:
        count_fault("latency")
        await asyncio.sleep(sim.config.latency_ms / 1000.0)
    return resp
