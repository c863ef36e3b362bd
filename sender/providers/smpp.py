"""SMPP 3.4 routes (``kind = "smpp"``): an ESME client sending through an SMSC's binds.

The route: ``url = "smpp://host:port"``, ``account`` the system_id, ``token`` the password
(at most 8 characters, as SMPP 3.4 allows), ``sender_id`` (or a ``sender_pool``) the source
address (``+`` digits: international, TON 1 / NPI 1; letters: alphanumeric, TON 5), ``smpp`` its
:class:`~sender.models.SmppOptions` (binds, window, pace, long messages, receipt ids).

Sending: each message is split into parts (``hexcast.core.smpp.concat``: GSM-7 or UCS-2,
concatenated by UDH with an 8-bit reference, SAR TLVs or one ``message_payload``), each part
one ``submit_sm`` over the live bind with the most room (``sender.providers.smpp_binds``),
asking for a final receipt. ``binds × window`` messages are in flight. The answer:

- every part ``ESME_ROK``: accepted; the first part's id is the message's, all of them its
  ``part_ids`` (each part's receipt names its own id).
- ``ESME_RTHROTTLED`` / ``ESME_RMSGQFUL``: the bind slows down and the part is submitted
  again until ``response_timeout_s`` has passed; then a first part is
  :class:`ProviderRateLimited` (nothing went: the message is sent again later).
- ``ESME_RSYSERR`` / ``ESME_RX_T_APPN`` / ``ESME_RINVBNDSTS`` on a first part: unavailable
  (not taken), so it fails over; any other status rejects the message with
  ``submit-0x<status>`` (``submit-0x0B`` is an invalid destination).
- a later part throttled past ``response_timeout_s``, not taken, or without a bind in time:
  the first part went, so the message is in doubt (ambiguous :class:`ProviderUnavailable`):
  never sent again whole, it ends ``unknown`` as below. A later part refused for good rejects
  the message (with the parts sent).
- no bind up: :class:`ProviderUnavailable` (not ambiguous); a submit written and not answered
  (timeout, connection lost): ambiguous. SMPP has no lookup by our reference
  (``query_sm`` needs the SMSC's id, which a lost answer never gave), so ``supports_lookup``
  is False: such messages end ``unknown`` and ``hexcast deferred``'s operator commands resolve
  them; they are never sent again blindly.

Receipts and replies come as ``deliver_sm`` over a receiver or transceiver bind and go to the
sender's :data:`~sender.providers.base.Deliveries` (``deliver_to``), which keeps them before the
SMSC is answered. A receipt (esm_class 0x04) is read from its ``receipted_message_id`` and
``message_state`` TLVs when present, else from its text (``id:… stat:… err:…``). The TLV carries
the id as submit_sm_resp gave it (SMPP 3.4 §5.3.2.12), so it is read as the answer is;
``receipt_ids`` (hex vs decimal) applies to the text's ``id:`` only. A text id that does not
read as ``receipt_ids`` says (a route set up wrong) is not acknowledged: its batch's other
deliveries are kept, then the batch is answered ``ESME_RX_T_APPN`` and the SMSC delivers it
again (once the setting is put right, it lands). A deliver_sm that is no receipt or reply at all
(no ``id:``/``stat:``, a coding hexcast does not read) is logged and answered: sent again, it
would be as unreadable.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from hexcast.core.errors import ConfigError, ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.core.logging import get_logger
from hexcast.core.smpp.concat import Part, decode_text, reassemble, segment_of, split
from hexcast.core.smpp.pdu import Command, DeliverSm, Pdu, Status, SubmitSm, SubmitSmResp
from hexcast.core.smpp.receipt import MessageState, parse_receipt, read_receipt_tlvs
from sender import metrics
from sender.models import ProviderSpec, SmppOptions
from sender.providers.base import (
    Callbacks,
    Deliveries,
    Outgoing,
    Provider,
    ProviderResult,
    Receipt,
    Reply,
    SendReport,
    call_each,
)
from sender.providers.senders import pick_sender
from sender.providers.smpp_binds import Binds
from sender.providers.smpp_session import BindDown, Endpoint, Session
from sender.providers.status import DeliveryStatus, ErrorClass, StatusTable

__all__ = ["TABLE", "Delivered", "LongReplies", "SmppCallbacks", "SmppProvider", "UnmatchedReceipts",
           "answered_id", "build", "callbacks", "canonical_id", "probe"]

log = get_logger("hexcast.sender.smpp")

_THROTTLES = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})
_NOT_TAKEN = frozenset({Status.ESME_RSYSERR, Status.ESME_RX_T_APPN, Status.ESME_RINVBNDSTS})
_RECEIPT = 0x04  # esm_class bits 2-5: SMSC delivery receipt
_HELD = 10_000  # long replies waiting for parts
_STATE_WORD = {MessageState.ENROUTE: "enroute", MessageState.DELIVERED: "delivrd",
               MessageState.EXPIRED: "expired", MessageState.DELETED: "deleted",
               MessageState.UNDELIVERABLE: "undeliv", MessageState.ACCEPTED: "acceptd",
               MessageState.UNKNOWN: "unknown", MessageState.REJECTED: "rejectd"}

TABLE = StatusTable(
    kind="smpp",
    statuses={"enroute": DeliveryStatus.SENT, "acceptd": DeliveryStatus.SENT,
              "delivrd": DeliveryStatus.DELIVERED, "expired": DeliveryStatus.EXPIRED,
              "deleted": DeliveryStatus.FAILED, "undeliv": DeliveryStatus.FAILED,
              "rejectd": DeliveryStatus.FAILED, "unknown": DeliveryStatus.UNKNOWN},
    errors={
        # submit_sm_resp command_status (a rejection's code)
        "submit-0x01": ErrorClass.PERMANENT, "submit-0x0A": ErrorClass.PERMANENT,
        "submit-0x0B": ErrorClass.PERMANENT, "submit-0x14": ErrorClass.RETRY_LATER,
        "submit-0x45": ErrorClass.UNDELIVERED, "submit-0x50": ErrorClass.PERMANENT,
        "submit-0x51": ErrorClass.PERMANENT, "submit-0x58": ErrorClass.RETRY_LATER,
        "submit-0x62": ErrorClass.PERMANENT, "submit-0x64": ErrorClass.RETRY_LATER,
    },
)
"""Receipt ``stat`` words (or ``message_state`` TLVs) and submit_sm statuses as
``submit-0x<hex>``. A receipt's ``err`` is the SMSC's own (network) code: undelivered."""


def _address(value: str) -> tuple[int, int, str]:
    """(TON, NPI, address): ``+`` digits international, digits unknown/ISDN, else alphanumeric."""
    if value.startswith("+") and value[1:].isdigit():
        return 1, 1, value[1:]
    if value.isdigit():
        return 0, 1, value
    return 5, 0, value


def canonical_id(message_id: str, rule: str, *, receipt: bool) -> str:
    """An id as hexcast keeps it: as answered with ``same``; else the number it names in
    decimal, read from hex on the side that speaks hex (ValueError when it is not a number).
    ``receipt``: the id of a receipt's *text*; a ``receipted_message_id`` TLV is read as the
    submit_sm_resp id is (``receipt=False``)."""
    if rule == "same":
        return message_id
    hex_side = (rule == "hex_to_decimal") != receipt
    return str(int(message_id, 16 if hex_side else 10))


def answered_id(message_id: str, rule: str) -> str:
    """A submit_sm_resp id (or a receipt's ``receipted_message_id``, which repeats it) as kept:
    :func:`canonical_id`, or as given when it does not read as ``rule`` says (the SMSC took the
    message: its id is kept, and a TLV naming it still matches)."""
    try:
        return canonical_id(message_id, rule, receipt=False)
    except ValueError:
        return message_id


class UnmatchedReceipts(ValueError):
    """Receipts whose text id does not read as the route's ``receipt_ids`` says; raised after
    the rest of the batch is kept, so the SMSC delivers them again."""


class _TextIdUnreadable(ValueError):
    """A receipt text's id that does not read as the route's ``receipt_ids`` says."""


class Delivered(NamedTuple):
    """What a batch of deliver_sm holds: receipts, replies, and why receipts were refused."""

    receipts: list[Receipt]
    replies: list[Reply]
    refused: list[str]


class SmppProvider:
    """One SMSC account (system_id) over ``binds`` sessions."""

    max_batch = 1000
    supports_lookup = False

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> None:
        opts = spec.smpp or SmppOptions()
        where = urlsplit(spec.url)
        if not where.hostname or not where.port:
            raise ConfigError(f"provider {spec.name}: url: smpp://host:port, not {spec.url!r}")
        if not (spec.sender_id or spec.sender_pool):
            raise ConfigError(f"provider {spec.name}: sender_id: the source address to send from")
        self.name = spec.name
        self._spec, self._opts = spec, opts
        self._binds = Binds(_endpoint(spec, opts), connect_timeout_s=timeout_s)
        self._wait_s = timeout_s
        self._concurrency = opts.binds * opts.window
        self._reference = random.randrange(256)
        self._long = LongReplies()

    def deliver_to(self, deliveries: Deliveries) -> None:
        """Where receipts and replies go; binds open now, so they arrive before any send."""
        self._binds.deliver_to(functools.partial(self.hand_over, deliveries))
        self._binds.start()

    async def hand_over(self, deliveries: Deliveries, pdus: list[DeliverSm]) -> None:
        """A batch of deliver_sm to ``deliveries``; :class:`UnmatchedReceipts` after the rest
        is kept when some receipts are refused (the batch is answered ``ESME_RX_T_APPN``)."""
        got = self.read_deliveries(pdus)
        await deliveries(got.receipts, got.replies)
        if got.refused:
            raise UnmatchedReceipts(f"{len(got.refused)} receipts not kept: {got.refused[0]}")

    @property
    def live_binds(self) -> int:
        return self._binds.live

    async def aclose(self) -> None:
        await self._binds.aclose()

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        raise ProviderError(f"{self.name}: SMPP finds no message by our reference")

    async def send(self, messages: list[Outgoing]) -> SendReport:
        return await call_each(messages, self._one, concurrency=self._concurrency,
                               go_on_after_ambiguous=True)

    async def _one(self, msg: Outgoing) -> ProviderResult:
        self._reference = (self._reference + 1) % 256
        parts = split(msg.body, mode=self._opts.long_messages, reference=self._reference,
                      coding=self._opts.data_coding)
        ids: list[str] = []
        for n, part in enumerate(parts, start=1):
            try:
                resp = await self._submit(msg, part)
            except ProviderUnavailable as exc:  # no bind in time: in doubt once a part went
                if ids and not exc.ambiguous:
                    raise self._partly_sent(msg, n, len(parts), str(exc)) from exc
                raise
            if resp.status == Status.ESME_ROK and isinstance(resp.body, SubmitSmResp):
                ids.append(answered_id(resp.body.message_id, self._opts.receipt_ids))
                continue
            error = f"submit-0x{resp.status:02X}: {_name(resp.status)}"
            if ids and (resp.status in _THROTTLES or resp.status in _NOT_TAKEN):
                raise self._partly_sent(msg, n, len(parts), error)
            if ids:
                return ProviderResult(msg.client_ref, False, ids[0],
                                      f"{error} (part {n} of {len(parts)}; {len(ids)} parts sent)")
            if resp.status in _THROTTLES:
                raise ProviderRateLimited(f"{self.name}: {error}", retry_after=1.0)
            if resp.status in _NOT_TAKEN:
                raise ProviderUnavailable(f"{self.name}: {error}")
            return ProviderResult(msg.client_ref, False, None, error)
        return ProviderResult(msg.client_ref, True, ids[0],
                              part_ids=tuple(ids) if len(ids) > 1 else ())

    def _partly_sent(self, msg: Outgoing, n: int, total: int, why: str) -> ProviderUnavailable:
        """A later part not taken for now (throttled past ``response_timeout_s``, not taken,
        no bind in time) after the first went: the message is in doubt, never resent whole."""
        return ProviderUnavailable(f"{self.name}: {msg.client_ref}: part {n} of {total} not sent "
                                   f"({why}) after {n - 1} went", ambiguous=True)

    async def _submit(self, msg: Outgoing, part: Part) -> Pdu:
        """One part's submit_sm; a throttled one again (the bind slowed down), and one whose
        bind closed before it was written again on another, until ``response_timeout_s``."""
        ton, npi, source = _address(pick_sender(self._spec, msg) or "")
        sm = SubmitSm(source_addr_ton=ton, source_addr_npi=npi, source_addr=source,
                      dest_addr_ton=1, dest_addr_npi=1, destination_addr=msg.to.removeprefix("+"),
                      esm_class=part.esm_class_bits, registered_delivery=1,
                      data_coding=part.data_coding, short_message=part.short_message,
                      tlvs=part.tlvs)
        give_up = time.monotonic() + self._opts.response_timeout_s
        while True:
            session: Session = await self._binds.pick(self._wait_s)
            try:
                resp = await session.submit(sm)
            except BindDown:  # closed since it was picked; nothing written: another bind
                if time.monotonic() > give_up:
                    raise
                continue
            if resp.status not in _THROTTLES or time.monotonic() > give_up:
                return resp
            metrics.PROVIDER_THROTTLED.labels(provider=self.name).inc()  # slowed, sent again

    def read_deliveries(self, pdus: list[DeliverSm]) -> Delivered:
        """Receipts and replies from deliver_sm bodies. A receipt whose text id does not read as
        ``receipt_ids`` says is refused (the SMSC is to deliver it again); another unreadable
        deliver_sm is logged and left."""
        got = Delivered([], [], [])
        for sm in pdus:
            try:
                if sm.esm_class & 0x3C == _RECEIPT:
                    got.receipts.append(self._receipt(sm))
                elif (reply := self._long.add(sm)) is not None:
                    got.replies.append(reply)
            except _TextIdUnreadable as exc:
                log.error("smpp_receipt_id_unreadable", route=self.name, error=str(exc),
                          receipt_ids=self._opts.receipt_ids)
                got.refused.append(str(exc))
            except (ValueError, UnicodeDecodeError) as exc:
                log.error("smpp_unreadable_delivery", route=self.name, error=str(exc),
                          source=sm.source_addr, esm_class=sm.esm_class)
        return got

    def _receipt(self, sm: DeliverSm) -> Receipt:
        tlv_id, state = read_receipt_tlvs(sm.tlvs)
        word = _STATE_WORD.get(state) if state is not None else None
        rule = self._opts.receipt_ids
        if tlv_id is not None and word is not None:
            message_id, code = answered_id(tlv_id, rule), _text_err(sm)
        else:
            text = parse_receipt(decode_text(sm.data_coding, sm.short_message))
            word, code = word or text.stat.lower(), text.err
            # the TLV repeats the submit_sm_resp id; only the text's id: follows receipt_ids
            message_id = answered_id(tlv_id, rule) if tlv_id is not None else _text_id(text.id, rule)
        if code is not None and code.strip("0") == "":
            code = None
        return Receipt(provider_message_id=message_id, status=TABLE.status(word), code=code,
                       by_part_id=True)


def _text_id(text_id: str, rule: str) -> str:
    """A receipt text's ``id:`` as kept; :class:`_TextIdUnreadable` when it does not read as
    ``rule`` says."""
    try:
        return canonical_id(text_id, rule, receipt=True)
    except ValueError:
        side = "decimal" if rule == "hex_to_decimal" else "hex"
        raise _TextIdUnreadable(
            f"receipt id:{text_id[:40]} is not {side} as receipt_ids {rule!r} says") from None


def _text_err(sm: DeliverSm) -> str | None:
    """The ``err:`` of a receipt's text, when it has a readable one."""
    try:
        return parse_receipt(decode_text(sm.data_coding, sm.short_message)).err
    except (ValueError, UnicodeDecodeError):
        return None


class LongReplies:
    """The parts of long replies (UDH or SAR) until each reply is whole. Held in memory, at most
    :data:`_HELD` replies (the oldest incomplete one goes first): a restart loses the parts of
    a reply half received, which the SMSC has been answered for."""

    def __init__(self) -> None:
        self._parts: dict[tuple[str, str, int, int], dict[int, Part]] = {}

    def add(self, sm: DeliverSm) -> Reply | None:
        """The reply ``sm`` completes (or is by itself), else None while parts are missing."""
        part = Part.of(sm)
        segment = segment_of(part)
        if segment is None or segment.total <= 1:
            return _reply(sm, reassemble([part]))
        key = (sm.source_addr, sm.destination_addr, segment.reference, segment.total)
        got = self._parts.pop(key, {})
        got[segment.number] = part
        if len(got) < segment.total:
            self._parts[key] = got  # now the newest
            while len(self._parts) > _HELD:
                del self._parts[next(iter(self._parts))]
            return None
        return _reply(sm, reassemble(got.values()))


def _reply(sm: DeliverSm, body: str) -> Reply:
    """A handset's text. Its ref (for dedupe of a deliver_sm the SMSC sends again) is a digest
    of who sent what to whom: the same words again from the same number count once until
    the reply before them is answered (a second STOP changes nothing anyway)."""
    phone = f"+{sm.source_addr.lstrip('+')}"
    digest = hashlib.sha256(f"{phone}|{sm.destination_addr}|{body}".encode()).hexdigest()[:32]
    return Reply(phone=phone, to=sm.destination_addr, body=body, ref=f"smpp:{digest}")


def _name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return "unknown status"


class SmppCallbacks:
    """An SMSC posts nothing over HTTP: receipts come over the binds. Every callback is refused."""

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        return False

    def receipts(self, *, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        raise ValueError("an smpp route's receipts come over its binds")


def build(spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> Provider:
    return SmppProvider(spec, timeout_s=timeout_s, concurrency=concurrency)


def callbacks(spec: ProviderSpec) -> Callbacks:
    return SmppCallbacks()


async def probe(spec: ProviderSpec, *, timeout_s: float) -> str:
    """Bind as a transceiver and unbind: the SMSC takes the credentials and answers."""
    SmppProvider(spec, timeout_s=timeout_s, concurrency=1)  # the route's own checks first
    endpoint = _endpoint(spec, spec.smpp or SmppOptions())
    session = Session(endpoint, Command.BIND_TRANSCEIVER, None)
    await session.open(timeout_s)
    await session.close()
    return f"bound as {endpoint.system_id} to {endpoint.host}:{endpoint.port}"


def _endpoint(spec: ProviderSpec, opts: SmppOptions) -> Endpoint:
    where = urlsplit(spec.url)
    return Endpoint(spec.name, where.hostname or "", where.port or 0, spec.account or "",
                    spec.token.get_secret_value(), opts)
