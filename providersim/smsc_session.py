"""One ESME connection to the simulated SMSC: framing, bind state, answers and faults.

Header-level damage (unknown command id, impossible length) is answered with generic_nack;
a known request whose body is malformed gets its own response carrying the error status, as
SMPP 3.4 section 2.8 says. Either way the connection stays up while the framing is intact.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import structlog

from hexcast.core.errors import SmppError
from hexcast.core.smpp.pdu import (
    Bind,
    BindResp,
    Command,
    Framer,
    Pdu,
    QuerySm,
    QuerySmResp,
    Sequences,
    Status,
    SubmitSm,
    SubmitSmResp,
    decode,
    encode,
    error_answer,
)
from providersim.metrics import count_fault, count_request

if TYPE_CHECKING:
    from providersim.smsc import Smsc
    from providersim.smsc_book import Receipt

__all__ = ["RECEIVES", "SMSC_SYSTEM_ID", "Session", "Throttle"]

_log = structlog.get_logger("providersim.smsc")
SMSC_SYSTEM_ID = "hexcast-smsc"
_SC_INTERFACE_VERSION = {0x0210: b"\x34"}
_TRANSMITS = (Command.BIND_TRANSMITTER, Command.BIND_TRANSCEIVER)
RECEIVES = (Command.BIND_RECEIVER, Command.BIND_TRANSCEIVER)


class Session:
    """Reads PDUs, answers them (after ``smpp_resp_delay_s``), sends deliver_sm."""

    def __init__(self, smsc: Smsc, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.smsc = smsc
        self.reader, self.writer = reader, writer
        self.bound: Command | None = None
        self.system_id = ""
        self.sequences = Sequences()
        self.outstanding: dict[int, Receipt] = {}  # deliver_sm sent, not yet answered
        self.closed = False
        self.in_flight = 0  # submit_sm read, not yet answered
        self._second, self._in_second = 0, 0  # submit_sm read in this whole second

    @property
    def receives(self) -> bool:
        return self.bound in RECEIVES and not self.closed

    async def run(self) -> None:
        framer = Framer()
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    frames = framer.feed(data)
                except SmppError as exc:  # the stream cannot be resynchronised
                    self._write(Pdu(Command.GENERIC_NACK, exc.status, 0))
                    break
                for frame in frames:
                    if not self.closed:
                        self._handle(frame)
                await self.writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()
            self.smsc.lost(self)

    def send(self, receipt: Receipt) -> None:
        """A deliver_sm to this receiver; answered later by deliver_sm_resp."""
        sequence = self.sequences.next()
        self.outstanding[sequence] = receipt
        if self.bound is not None:
            self.smsc.stats[f"deliver_sm_to_{self.bound.name.lower()}"] += 1
        self._write(Pdu(Command.DELIVER_SM, 0, sequence, receipt.body))

    def _write(self, pdu: Pdu) -> None:
        if pdu.command is Command.SUBMIT_SM_RESP:  # (a malformed one was never counted in)
            self.in_flight = max(0, self.in_flight - 1)
        if not self.writer.is_closing():
            self.writer.write(encode(pdu))

    def _answer(self, pdu: Pdu, then_close: bool = False) -> None:
        delay = self.smsc.sim.config.smpp_resp_delay_s
        if not delay:
            self._write(pdu)
            if then_close:
                self.close()
            return
        count_fault("smpp_slow_answer")
        loop = asyncio.get_running_loop()
        loop.call_later(delay, self._write, pdu)
        if then_close:
            loop.call_later(delay, self.close)

    def _handle(self, frame: bytes) -> None:
        try:
            pdu = decode(frame)
        except SmppError as exc:
            self._malformed(frame, exc)
            return
        handler = _HANDLERS.get(pdu.command)
        if handler is not None:
            handler(self, pdu)
        elif pdu.command in (Command.DELIVER_SM_RESP, Command.GENERIC_NACK):
            self.smsc.answered(self, pdu)
        elif not pdu.command.is_response:  # deliver_sm from an ESME: not its to send
            self._answer(pdu.nack(Status.ESME_RINVCMDID))

    def _malformed(self, frame: bytes, exc: SmppError) -> None:
        self.smsc.stats["malformed"] += 1
        _log.info("smsc_malformed_pdu", error=str(exc), status=exc.status)
        self._answer(error_answer(frame, exc))

    def _bind(self, pdu: Pdu) -> None:
        body = pdu.body
        cfg = self.smsc.sim.config
        if not isinstance(body, Bind):
            return
        status = (Status.ESME_RALYBND if self.bound else
                  Status.ESME_RBINDFAIL if cfg.smpp_refuse_bind else
                  Status.ESME_RINVSYSID if body.system_id != cfg.smpp_system_id else
                  Status.ESME_RINVPASWD if body.password != cfg.smpp_password else Status.ESME_ROK)
        if status:
            self.smsc.stats["binds_refused"] += 1
            count_fault("smpp_bind_refused", int(status == Status.ESME_RBINDFAIL))
            self._answer(pdu.reply(status=status))
            return
        self.bound, self.system_id = pdu.command, body.system_id
        self.smsc.stats["binds"] += 1
        self.smsc.stats[pdu.command.name.lower()] += 1
        self._answer(pdu.reply(BindResp(SMSC_SYSTEM_ID, dict(_SC_INTERFACE_VERSION))))
        if self.receives:
            self.smsc.receiver_ready(self)

    def _submit(self, pdu: Pdu) -> None:
        self._count_submit()
        if self.bound not in _TRANSMITS or not isinstance(pdu.body, SubmitSm):
            self._answer(pdu.reply(status=Status.ESME_RINVBNDSTS))
            return
        pushed_back = self.smsc.push_back()
        if pushed_back is not None:
            count_request("smpp", "throttled")
            self._answer(pdu.reply(status=pushed_back))
            return
        status, message_id, receipts = self.smsc.book.submit(self.system_id, pdu.body)
        self.smsc.stats["submits"] += 1
        count_request("smpp", "ok")
        self.smsc.schedule(receipts)
        if self.smsc.sim.config.smpp_hold_submits:  # taken; the answer never comes
            self.smsc.stats["submits_held"] += 1
            return
        body = SubmitSmResp(message_id) if not status else None
        self._answer(pdu.reply(body, status), then_close=self.smsc.drop_due())

    def _count_submit(self) -> None:
        """The bind's submit_sm in flight and per whole second, and their high-water marks."""
        stats = self.smsc.stats
        self.in_flight += 1
        stats["max_in_flight_per_bind"] = max(stats["max_in_flight_per_bind"], self.in_flight)
        second = int(time.monotonic())
        if second != self._second:
            self._second, self._in_second = second, 0
        self._in_second += 1
        stats["max_submits_per_bind_second"] = max(stats["max_submits_per_bind_second"],
                                                   self._in_second)

    def _query(self, pdu: Pdu) -> None:
        self.smsc.stats["query_sm"] += 1
        if self.bound not in _TRANSMITS or not isinstance(pdu.body, QuerySm):
            self._answer(pdu.reply(status=Status.ESME_RINVBNDSTS))
            return
        found = self.smsc.book.query(pdu.body.message_id)
        if found is None:
            self._answer(pdu.reply(status=Status.ESME_RQUERYFAIL))
            return
        state, final_date = found
        self._answer(pdu.reply(QuerySmResp(pdu.body.message_id, final_date, state, 0)))

    def _enquire(self, pdu: Pdu) -> None:
        self.smsc.stats["enquire_links"] += 1
        if self.smsc.sim.config.smpp_mute_enquire:
            self.smsc.stats["enquire_links_unanswered"] += 1
            return
        self._answer(pdu.reply())

    def _unbind(self, pdu: Pdu) -> None:
        self.smsc.stats["unbinds"] += 1
        self._answer(pdu.reply(), then_close=True)

    def _ignore(self, pdu: Pdu) -> None:
        del pdu


_HANDLERS = {
    Command.BIND_TRANSMITTER: Session._bind, Command.BIND_RECEIVER: Session._bind,
    Command.BIND_TRANSCEIVER: Session._bind, Command.SUBMIT_SM: Session._submit,
    Command.QUERY_SM: Session._query, Command.ENQUIRE_LINK: Session._enquire,
    Command.UNBIND: Session._unbind, Command.ENQUIRE_LINK_RESP: Session._ignore,
    Command.UNBIND_RESP: Session._ignore,
}


class Throttle:
    """At most ``rate`` admissions per one-second window (None: no limit)."""

    def __init__(self) -> None:
        self.window = 0
        self.count = 0

    def admit(self, rate: float | None) -> bool:
        if rate is None:
            return True
        now = int(time.monotonic())
        if now != self.window:
            self.window, self.count = now, 0
        if self.count >= rate:
            return False
        self.count += 1
        return True
