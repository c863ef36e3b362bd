"""SMPP 3.4 PDUs: command ids, status codes, typed bodies, ``encode``/``decode`` of one whole
PDU and a :class:`Framer` that cuts a TCP stream into PDUs. Pure: no I/O.

A body is a frozen dataclass per PDU shape; each field's spec (type, maximum length incl. the
NUL, the status a bad value is answered with) is in ``_FIELDS``. An error response
(``command_status`` != 0) is sent header-only, as SMPP 3.4 says for ``submit_sm_resp`` and the
bind responses; one that carries a body anyway decodes too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from hexcast.core.errors import SmppError
from hexcast.core.smpp.codes import RESPONSE_BIT as _RESP
from hexcast.core.smpp.codes import Command, Status
from hexcast.core.smpp.octets import Reader, Writer

__all__ = [
    "HEADER_SIZE", "MAX_PDU", "MAX_SEQUENCE", "MESSAGE_PAYLOAD", "MESSAGE_STATE",
    "NETWORK_ERROR_CODE", "RECEIPTED_MESSAGE_ID", "SAR_MSG_REF_NUM", "SAR_SEGMENT_SEQNUM",
    "SAR_TOTAL_SEGMENTS", "Bind", "BindResp", "Body", "Command", "DeliverSm", "DeliverSmResp",
    "Empty", "Framer", "Pdu", "QuerySm", "QuerySmResp", "Sequences", "ShortMessage", "Status",
    "SubmitSm", "SubmitSmResp", "decode", "encode", "error_answer", "header",
]

HEADER_SIZE = 16
MAX_PDU = 64 * 1024
MAX_SEQUENCE = 0x7FFFFFFF
_HEADER = struct.Struct(">IIII")

SAR_MSG_REF_NUM = 0x020C
SAR_TOTAL_SEGMENTS = 0x020E
SAR_SEGMENT_SEQNUM = 0x020F
MESSAGE_PAYLOAD = 0x0424
RECEIPTED_MESSAGE_ID = 0x001E
MESSAGE_STATE = 0x0427
NETWORK_ERROR_CODE = 0x0423


# --- bodies -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Empty:
    """The body of enquire_link(_resp), unbind(_resp) and generic_nack."""


@dataclass(frozen=True, slots=True)
class Bind:
    """bind_transmitter, bind_receiver or bind_transceiver (the command says which)."""

    system_id: str
    password: str
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclass(frozen=True, slots=True)
class BindResp:
    system_id: str
    tlvs: dict[int, bytes] = field(default_factory=dict)  # sc_interface_version


@dataclass(frozen=True, slots=True)
class ShortMessage:
    """The mandatory fields submit_sm and deliver_sm share, then the optional TLVs."""

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""
    tlvs: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubmitSm(ShortMessage):
    """ESME → SMSC: one message (or one part of a long one)."""


@dataclass(frozen=True, slots=True)
class DeliverSm(ShortMessage):
    """SMSC → ESME: a mobile-originated message, or a delivery receipt (esm_class 0x04)."""


@dataclass(frozen=True, slots=True)
class SubmitSmResp:
    message_id: str


@dataclass(frozen=True, slots=True)
class DeliverSmResp:
    message_id: str = ""  # unused by SMPP 3.4: always empty


@dataclass(frozen=True, slots=True)
class QuerySm:
    message_id: str
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@dataclass(frozen=True, slots=True)
class QuerySmResp:
    message_id: str
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


Body = (Empty | Bind | BindResp | SubmitSm | DeliverSm | SubmitSmResp | DeliverSmResp | QuerySm
        | QuerySmResp)

_S = Status
# name, kind ("c" C-string, "t" time C-string: empty or 16 chars, "u8", "sm" sm_length +
# short_message), maximum octets incl. NUL, status for a bad value.
_FIELDS: dict[type, tuple[tuple[str, str, int, Status], ...]] = {
    Empty: (),
    Bind: (("system_id", "c", 16, _S.ESME_RINVSYSID), ("password", "c", 9, _S.ESME_RINVPASWD),
           ("system_type", "c", 13, _S.ESME_RINVSYSTYP),
           ("interface_version", "u8", 0, _S.ESME_RSYSERR), ("addr_ton", "u8", 0, _S.ESME_RSYSERR),
           ("addr_npi", "u8", 0, _S.ESME_RSYSERR),
           ("address_range", "c", 41, _S.ESME_RINVPARLEN)),
    BindResp: (("system_id", "c", 16, _S.ESME_RINVSYSID),),
    ShortMessage: (
        ("service_type", "c", 6, _S.ESME_RINVSERTYP),
        ("source_addr_ton", "u8", 0, _S.ESME_RINVSRCTON),
        ("source_addr_npi", "u8", 0, _S.ESME_RINVSRCNPI),
        ("source_addr", "c", 21, _S.ESME_RINVSRCADR),
        ("dest_addr_ton", "u8", 0, _S.ESME_RINVDSTTON),
        ("dest_addr_npi", "u8", 0, _S.ESME_RINVDSTNPI),
        ("destination_addr", "c", 21, _S.ESME_RINVDSTADR),
        ("esm_class", "u8", 0, _S.ESME_RINVESMCLASS), ("protocol_id", "u8", 0, _S.ESME_RSYSERR),
        ("priority_flag", "u8", 0, _S.ESME_RINVPRTFLG),
        ("schedule_delivery_time", "t", 17, _S.ESME_RINVSCHED),
        ("validity_period", "t", 17, _S.ESME_RINVEXPIRY),
        ("registered_delivery", "u8", 0, _S.ESME_RINVREGDLVFLG),
        ("replace_if_present_flag", "u8", 0, _S.ESME_RINVREPFLAG),
        ("data_coding", "u8", 0, _S.ESME_RSYSERR), ("sm_default_msg_id", "u8", 0, _S.ESME_RINVDFTMSGID),
        ("short_message", "sm", 255, _S.ESME_RINVMSGLEN)),
    SubmitSmResp: (("message_id", "c", 65, _S.ESME_RINVMSGID),),
    DeliverSmResp: (("message_id", "c", 65, _S.ESME_RINVMSGID),),
    QuerySm: (("message_id", "c", 65, _S.ESME_RINVMSGID),
              ("source_addr_ton", "u8", 0, _S.ESME_RINVSRCTON),
              ("source_addr_npi", "u8", 0, _S.ESME_RINVSRCNPI),
              ("source_addr", "c", 21, _S.ESME_RINVSRCADR)),
    QuerySmResp: (("message_id", "c", 65, _S.ESME_RINVMSGID),
                  ("final_date", "t", 17, _S.ESME_RSYSERR),
                  ("message_state", "u8", 0, _S.ESME_RSYSERR),
                  ("error_code", "u8", 0, _S.ESME_RSYSERR)),
}
_FIELDS[SubmitSm] = _FIELDS[DeliverSm] = _FIELDS[ShortMessage]

_C = Command
_BODY: dict[Command, type[Body]] = {
    _C.GENERIC_NACK: Empty, _C.BIND_RECEIVER: Bind, _C.BIND_TRANSMITTER: Bind,
    _C.BIND_TRANSCEIVER: Bind, _C.BIND_RECEIVER_RESP: BindResp,
    _C.BIND_TRANSMITTER_RESP: BindResp, _C.BIND_TRANSCEIVER_RESP: BindResp,
    _C.QUERY_SM: QuerySm, _C.QUERY_SM_RESP: QuerySmResp, _C.SUBMIT_SM: SubmitSm,
    _C.SUBMIT_SM_RESP: SubmitSmResp, _C.DELIVER_SM: DeliverSm, _C.DELIVER_SM_RESP: DeliverSmResp,
    _C.UNBIND: Empty, _C.UNBIND_RESP: Empty, _C.ENQUIRE_LINK: Empty, _C.ENQUIRE_LINK_RESP: Empty,
}
_WITH_TLVS = (BindResp, SubmitSm, DeliverSm)


@dataclass(frozen=True, slots=True)
class Pdu:
    """One PDU: header fields and a typed body (the type ``_BODY`` names for the command)."""

    command: Command
    status: int
    sequence: int
    body: Body = field(default_factory=Empty)

    def reply(self, body: Body | None = None, status: int = Status.ESME_ROK) -> Pdu:
        """This request's response, same sequence number; an empty-bodied one by default."""
        shape = _BODY[self.command.response]
        return Pdu(self.command.response, status, self.sequence,
                   body if body is not None else _default(shape))

    def nack(self, status: int) -> Pdu:
        return Pdu(Command.GENERIC_NACK, status, self.sequence, Empty())


def _default(shape: type[Body]) -> Body:
    if shape in (BindResp, SubmitSmResp):
        return shape("")  # type: ignore[call-arg]
    if shape is QuerySmResp:
        return QuerySmResp("")
    return shape()  # type: ignore[call-arg]


class Sequences:
    """Sequence numbers 1..0x7FFFFFFF, wrapping to 1."""

    def __init__(self, start: int = 1) -> None:
        self._next = start if 1 <= start <= MAX_SEQUENCE else 1

    def next(self) -> int:
        value = self._next
        self._next = 1 if value == MAX_SEQUENCE else value + 1
        return value


# --- encode / decode ----------------------------------------------------------------------

def encode(pdu: Pdu) -> bytes:
    """The PDU's octets, header included."""
    if not 0 <= pdu.sequence <= MAX_SEQUENCE:
        raise SmppError(f"sequence {pdu.sequence} outside 0..0x7FFFFFFF", status=_S.ESME_RSYSERR)
    shape = _BODY[pdu.command]
    if not isinstance(pdu.body, shape):
        raise SmppError(f"{pdu.command.name} carries {shape.__name__}, not "
                        f"{type(pdu.body).__name__}", status=_S.ESME_RSYSERR)
    w = Writer()
    if not (pdu.status and pdu.command.is_response):
        _write_body(w, pdu.body)
    return _HEADER.pack(HEADER_SIZE + len(w.out), pdu.command, pdu.status, pdu.sequence) + w.out


def _write_body(w: Writer, body: Body) -> None:
    for name, kind, max_len, status in _FIELDS[type(body)]:
        value = getattr(body, name)
        if kind == "u8":
            w.u8(value, name)
        elif kind == "sm":
            if len(value) >= max_len:
                raise SmppError(f"short_message: {len(value)} octets, at most 254"
                                " (message_payload carries more)", status=status)
            w.u8(len(value), "sm_length")
            w.octets(value)
        else:
            if kind == "t" and len(value) not in (0, 16):
                raise SmppError(f"{name}: must be empty or 16 characters", status=status)
            w.cstr(value, name, max_len, status)
    if isinstance(body, _WITH_TLVS):
        w.tlvs(body.tlvs)


def header(frame: bytes) -> tuple[int, int, int, int]:
    """``(command_length, command_id, command_status, sequence_number)`` of a frame."""
    if len(frame) < HEADER_SIZE:
        raise SmppError(f"{len(frame)} octets: shorter than a header", status=_S.ESME_RINVCMDLEN)
    length, command_id, status, sequence = _HEADER.unpack_from(frame)
    return length, command_id, status, sequence


def error_answer(frame: bytes, error: SmppError) -> Pdu:
    """What to answer a frame ``decode`` refused: the request's own response carrying
    ``error.status`` (SMPP 3.4 section 2.8: a bad body), or generic_nack when the command id
    is unknown or the frame is itself a response."""
    _, command_id, _, sequence = header(frame)
    if command_id in Command._value2member_map_ and not command_id & _RESP:
        request = Command(command_id)
        return Pdu(request.response, error.status, sequence, _default(_BODY[request.response]))
    return Pdu(Command.GENERIC_NACK, error.status, sequence)


def decode(frame: bytes) -> Pdu:
    """One whole PDU (header included) → :class:`Pdu`; SmppError names what is wrong."""
    length, command_id, status, sequence = header(frame)
    if length != len(frame):
        raise SmppError(f"command_length {length} but {len(frame)} octets",
                        status=_S.ESME_RINVCMDLEN)
    try:
        command = Command(command_id)
    except ValueError:
        raise SmppError(f"unknown command_id 0x{command_id:08X}", status=_S.ESME_RINVCMDID) from None
    shape = _BODY[command]
    reader = Reader(frame[HEADER_SIZE:])
    if status and command.is_response and not reader.remaining:
        return Pdu(command, status, sequence, _default(shape))
    return Pdu(command, status, sequence, _read_body(reader, shape, command.name))


def _read_body(r: Reader, shape: type[Body], name: str) -> Body:
    values: dict[str, Any] = {}
    for fname, kind, max_len, status in _FIELDS[shape]:
        if kind == "u8":
            values[fname] = r.u8(fname)
        elif kind == "sm":
            size = r.u8("sm_length")
            if size >= max_len:
                raise SmppError(f"sm_length {size}: at most 254", status=status)
            values[fname] = r.take(size, "short_message")
        else:
            values[fname] = text = r.cstr(fname, max_len, status)
            if kind == "t" and len(text) not in (0, 16):
                raise SmppError(f"{fname}: must be empty or 16 characters", status=status)
    if shape in _WITH_TLVS:
        values["tlvs"] = r.tlvs()
    else:
        r.end(name)
    return shape(**values)


class Framer:
    """Cuts a TCP byte stream into whole PDUs. A command_length below 16 or above
    :data:`MAX_PDU` is an SmppError: the stream cannot be resynchronised, close it."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        pos, buf = 0, self._buf
        while len(buf) - pos >= 4:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if not HEADER_SIZE <= length <= MAX_PDU:
                raise SmppError(f"command_length {length} outside 16..{MAX_PDU}",
                                status=_S.ESME_RINVCMDLEN)
            if len(buf) - pos < length:
                break
            frames.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Octets of an incomplete PDU held back."""
        return len(self._buf)
