"""The simulator's SMSC in-process over real sockets: binds, long messages ledgered once,
duplicates, receipts (failed, duplicated, redelivered after a lost connection), query_sm,
malformed PDUs and the faults (throttle, slow answers, dropped connection, refused binds)."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from hexcast.core.smpp.concat import Part, reassemble, split
from hexcast.core.smpp.gsm import decode_gsm7
from hexcast.core.smpp.pdu import (
    Bind,
    BindResp,
    Command,
    DeliverSm,
    DeliverSmResp,
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
)
from hexcast.core.smpp.receipt import MessageState, parse_receipt, read_receipt_tlvs
from providersim.config import SimConfig
from providersim.ledger import Sim
from providersim.smsc import Smsc


class Client:
    """A bare ESME on hexcast's codec: sends PDUs, collects what comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seq = Sequences()
        self.framer = Framer()
        self.inbox: list[Pdu] = []
        self.closed = False
        self.auto_ack = True

    async def send(self, command: Command, body: Any = None) -> int:
        sequence = self.seq.next()
        pdu = Pdu(command, 0, sequence, body) if body is not None else Pdu(command, 0, sequence)
        await self.raw(encode(pdu))
        return sequence

    async def raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def pump(self, until: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not until() and not self.closed and time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), 0.05)
            except TimeoutError:
                continue
            if not data:
                self.closed = True
                break
            for frame in self.framer.feed(data):
                pdu = decode(frame)
                self.inbox.append(pdu)
                if pdu.command == Command.DELIVER_SM and self.auto_ack:
                    await self.raw(encode(pdu.reply(DeliverSmResp())))
        return until()

    def answer(self, sequence: int) -> Pdu | None:
        return next((p for p in self.inbox if p.sequence == sequence and p.command.is_response),
                    None)

    async def call(self, command: Command, body: Any = None) -> Pdu:
        sequence = await self.send(command, body)
        await self.pump(lambda: self.answer(sequence) is not None)
        found = self.answer(sequence)
        if found is None:
            raise AssertionError(f"no answer to {command.name}")
        return found

    def deliveries(self) -> list[DeliverSm]:
        return [p.body for p in self.inbox
                if p.command == Command.DELIVER_SM and isinstance(p.body, DeliverSm)]


@asynccontextmanager
async def smsc(**config: Any) -> AsyncIterator[Smsc]:
    settings = {"smpp_port": 0, "dlr_delay_s": 0.05, **config}
    async with Smsc(Sim(SimConfig(**settings))) as server:
        yield server


@asynccontextmanager
async def client(server: Smsc, bind: Command | None = Command.BIND_TRANSCEIVER,
                 password: str = "secret") -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    c = Client(reader, writer)
    if bind is not None:
        resp = await c.call(bind, Bind("hexcast", password))
        assert resp.status == Status.ESME_ROK
        assert resp.body == BindResp("hexcast-smsc", {0x0210: b"\x34"})
    try:
        yield c
    finally:
        writer.close()


def submit(dest: str = "4915112345678", text: str = "hello", **fields: Any) -> SubmitSm:
    defaults: dict[str, Any] = {"source_addr": "Shop", "dest_addr_ton": 1, "dest_addr_npi": 1,
                                "destination_addr": dest, "registered_delivery": 1,
                                "short_message": text.encode()}
    return SubmitSm(**{**defaults, **fields})


async def test_long_gsm_message_ledgered_once_and_duplicate_counted() -> None:
    text = "Sale {today} [50%] off ~ €5 " * 12  # extension characters across part edges
    parts = split(text, mode="udh", reference=77)
    async with smsc() as server, client(server) as c:
        for _ in range(2):  # the same message twice: ledgered once, then a duplicate
            for part in parts:
                resp = await c.call(Command.SUBMIT_SM, submit(
                    data_coding=part.data_coding, short_message=part.short_message,
                    esm_class=part.esm_class_bits))
                assert resp.status == 0
                assert isinstance(resp.body, SubmitSmResp)
        assert [r.body for r in server.sim.records] == [text]
        assert server.sim.records[0].to == "+4915112345678"
        assert server.sim.duplicates == 1
        assert await c.pump(lambda: len(c.deliveries()) == 2 * len(parts))


async def test_sar_and_payload_messages_reassembled() -> None:
    text = "Привет 😀 " * 20
    async with smsc() as server, client(server) as c:
        for mode in ("sar", "payload"):
            for part in split(text, mode=mode, reference=5):  # type: ignore[arg-type]
                resp = await c.call(Command.SUBMIT_SM, submit(
                    dest="4915100000002" if mode == "sar" else "4915100000003",
                    data_coding=part.data_coding, short_message=part.short_message,
                    tlvs=part.tlvs))
                assert resp.status == Status.ESME_ROK
        assert [(r.to, r.body) for r in server.sim.records] == [
            ("+4915100000002", text), ("+4915100000003", text)]


async def test_receipts_text_tlvs_failures_and_query() -> None:
    async with smsc(deliver_fail_rate=1.0, smpp_id_format="decimal") as server, \
            client(server) as c:
        resp = await c.call(Command.SUBMIT_SM, submit())
        assert isinstance(resp.body, SubmitSmResp)
        message_id = resp.body.message_id
        assert await c.pump(lambda: len(c.deliveries()) == 1)
        receipt = c.deliveries()[0]
        assert receipt.esm_class == 0x04
        assert receipt.destination_addr == "Shop"
        assert read_receipt_tlvs(receipt.tlvs) == (message_id, MessageState.UNDELIVERABLE)
        parsed = parse_receipt(decode_gsm7(receipt.short_message))
        assert (parsed.id, parsed.stat, parsed.text) == (str(int(message_id, 16)), "UNDELIV", "hello")
        await c.pump(lambda: server.sim.records[0].status == "failed", 2.0)
        query = await c.call(Command.QUERY_SM, QuerySm(message_id, 5, 0, "Shop"))
        assert query.status == 0
        assert isinstance(query.body, QuerySmResp)
        assert query.body.message_state == MessageState.UNDELIVERABLE
        assert len(query.body.final_date) == 16
        unknown = await c.call(Command.QUERY_SM, QuerySm("ffff"))
        assert unknown.status == Status.ESME_RQUERYFAIL


async def test_a_long_message_picked_to_fail_fails_at_its_last_part() -> None:
    """deliver_fail_rate picks whole messages; a long one picked fails at its last part only
    (its other parts delivered), and the ledger shows it failed whatever order the receipts
    went in."""
    parts = split("Lost on the way " * 25, mode="udh", reference=3)
    async with smsc(deliver_fail_rate=1.0, callback_shuffle=True) as server, \
            client(server) as c:
        ids = []
        for part in parts:
            resp = await c.call(Command.SUBMIT_SM, submit(
                data_coding=part.data_coding, short_message=part.short_message,
                esm_class=part.esm_class_bits))
            assert isinstance(resp.body, SubmitSmResp)
            ids.append(resp.body.message_id)
        assert await c.pump(lambda: len(c.deliveries()) == len(parts))
        states = dict(read_receipt_tlvs(d.tlvs) for d in c.deliveries())
        assert [states[i] for i in ids] == [*[MessageState.DELIVERED] * (len(parts) - 1),
                                            MessageState.UNDELIVERABLE]
        assert await c.pump(lambda: server.stats["receipts_sent"] == len(parts))
        assert [r.status for r in server.sim.records] == ["failed"]


async def test_no_receipt_unless_asked_and_duplicated_receipts() -> None:
    async with smsc(callback_dup_rate=1.0) as server, client(server) as c:
        await c.call(Command.SUBMIT_SM, submit(registered_delivery=0))
        resp = await c.call(Command.SUBMIT_SM, submit(text="again"))
        assert await c.pump(lambda: len(c.deliveries()) == 2)
        ids = {read_receipt_tlvs(d.tlvs)[0] for d in c.deliveries()}
        assert ids == {resp.body.message_id}  # type: ignore[union-attr]
        await c.pump(lambda: False, 0.3)
        assert len(c.deliveries()) == 2


async def test_unanswered_receipt_goes_to_the_next_receiver() -> None:
    async with smsc() as server:
        async with client(server, Command.BIND_TRANSMITTER) as tx:
            await tx.call(Command.SUBMIT_SM, submit())
            async with client(server, Command.BIND_RECEIVER) as rx:
                rx.auto_ack = False  # takes the receipt, never answers, goes away
                assert await rx.pump(lambda: len(rx.deliveries()) == 1)
            async with client(server, Command.BIND_RECEIVER) as rx2:
                assert await rx2.pump(lambda: len(rx2.deliveries()) == 1)
                assert await rx2.pump(lambda: server.stats["receipts_sent"] == 1)
        assert server.snapshot()["deliver_sm_unanswered"] == 0


async def test_mo_waits_for_a_receiver() -> None:
    async with smsc() as server:
        text = "Привет " * 30  # 210 UCS-2 units: 4 parts
        assert server.mo("+4915199999999", "12345", text) == 4
        async with client(server, Command.BIND_RECEIVER) as rx:
            assert await rx.pump(lambda: len(rx.deliveries()) == 4)
            got = rx.deliveries()
            assert {d.esm_class for d in got} == {0x40}
            assert reassemble([Part.of(d) for d in got]) == text


async def test_bind_rules() -> None:
    async with smsc() as server:
        async with client(server, None) as c:
            early = await c.call(Command.SUBMIT_SM, submit())
            assert early.status == Status.ESME_RINVBNDSTS
            wrong = await c.call(Command.BIND_TRANSMITTER, Bind("hexcast", "nope"))
            assert wrong.status == Status.ESME_RINVPASWD
            assert (await c.call(Command.BIND_TRANSMITTER, Bind("hexcast", "secret"))).status == 0
            again = await c.call(Command.BIND_TRANSMITTER, Bind("hexcast", "secret"))
            assert again.status == Status.ESME_RALYBND
        async with client(server, Command.BIND_RECEIVER) as rx:
            refused = await rx.call(Command.SUBMIT_SM, submit())
            assert refused.status == Status.ESME_RINVBNDSTS
        server.sim.config = server.sim.config.model_copy(update={"smpp_refuse_bind": True})
        async with client(server, None) as c:
            assert (await c.call(Command.BIND_TRANSCEIVER, Bind("hexcast", "secret"))).status == \
                Status.ESME_RBINDFAIL


async def test_link_commands_and_malformed_pdus() -> None:
    async with smsc() as server, client(server) as c:
        assert (await c.call(Command.ENQUIRE_LINK)).command == Command.ENQUIRE_LINK_RESP
        await c.raw(struct.pack(">IIII", 16, 0x77, 0, 900))  # unknown command
        await c.raw(struct.pack(">IIII", 20, 0x04, 0, 901) + b"\0\0\0x")  # cut-off submit_sm
        bad_dest = await c.call(Command.SUBMIT_SM, submit(dest="12"))
        assert bad_dest.status == Status.ESME_RINVDSTADR
        await c.pump(lambda: c.answer(901) is not None)
        assert c.answer(900) == Pdu(Command.GENERIC_NACK, Status.ESME_RINVCMDID, 900)
        assert c.answer(901) == Pdu(Command.SUBMIT_SM_RESP, Status.ESME_RINVCMDLEN, 901,
                                    SubmitSmResp(""))
        assert (await c.call(Command.ENQUIRE_LINK)).status == 0  # still connected
        assert (await c.call(Command.UNBIND)).command == Command.UNBIND_RESP
        assert await c.pump(lambda: c.closed)


async def test_impossible_length_closes_the_connection() -> None:
    async with smsc() as server, client(server) as c:
        await c.raw(struct.pack(">IIII", 8, 0x15, 0, 1))
        assert await c.pump(lambda: c.closed)
        assert c.inbox[-1].command == Command.GENERIC_NACK
        assert c.inbox[-1].status == Status.ESME_RINVCMDLEN


async def test_throttle_delay_and_drop_faults() -> None:
    async with smsc(smpp_throttle_per_s=3) as server, client(server) as c:
        sequences = [await c.send(Command.SUBMIT_SM, submit(text=f"m{n}")) for n in range(10)]
        await c.pump(lambda: all(c.answer(s) for s in sequences))
        statuses = [c.answer(s).status for s in sequences]  # type: ignore[union-attr]
        assert Status.ESME_RTHROTTLED in statuses
        assert statuses.count(0) >= 3
        assert len(server.sim.records) == statuses.count(0)

    async with smsc(smpp_resp_delay_s=0.3) as server, client(server) as c:
        sequence = await c.send(Command.ENQUIRE_LINK)
        assert not await c.pump(lambda: c.answer(sequence) is not None, 0.1)
        assert await c.pump(lambda: c.answer(sequence) is not None)

    async with smsc(smpp_drop_after=2) as server:
        async with client(server) as c:
            first = await c.call(Command.SUBMIT_SM, submit(text="one"))
            second = await c.call(Command.SUBMIT_SM, submit(text="two"))
            assert first.status == second.status == 0  # answered, then the line goes dead
            assert await c.pump(lambda: c.closed)
        assert server.sim.config.smpp_drop_after is None  # once
        async with client(server) as c:
            for n in range(3):
                assert (await c.call(Command.SUBMIT_SM, submit(text=f"n{n}"))).status == 0
            assert not c.closed
