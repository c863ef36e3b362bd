"""Delivery receipts: the SMPP 3.4 Appendix B text (``id:… sub:… dlvrd:… submit date:…
done date:… stat:… err:… Text:…``), the ``message_state`` values and the receipt TLVs.

Parsing is tolerant, as SMSCs vary: keys in any order and any case, extra spaces, no
``Text:``. Only ``id:`` and ``stat:`` are required.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from hexcast.core.smpp.pdu import MESSAGE_STATE, RECEIPTED_MESSAGE_ID

__all__ = [
    "STATS", "STAT_STATE", "MessageState", "ReceiptText", "format_receipt", "parse_receipt",
    "read_receipt_tlvs", "receipt_date", "receipt_tlvs",
]


class MessageState(IntEnum):
    """The ``message_state`` TLV and ``query_sm_resp`` values."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


STAT_STATE: dict[str, MessageState] = {
    "ENROUTE": MessageState.ENROUTE, "DELIVRD": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED, "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE, "ACCEPTD": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN, "REJECTD": MessageState.REJECTED,
}
"""A receipt's ``stat:`` word → its message_state."""
STATS = frozenset(STAT_STATE)


@dataclass(frozen=True, slots=True)
class ReceiptText:
    """The fields of a receipt text, as text (SMSCs pad and format them variously)."""

    id: str
    sub: str = "001"
    dlvrd: str = "001"
    submit_date: str = ""
    done_date: str = ""
    stat: str = "DELIVRD"
    err: str = "000"
    text: str = ""


def receipt_date(at: datetime) -> str:
    """``YYMMDDhhmm``, the receipt's date form."""
    return at.strftime("%y%m%d%H%M")


def format_receipt(r: ReceiptText) -> str:
    """The Appendix B text; ``Text:`` holds the first 20 characters of the message."""
    return (f"id:{r.id} sub:{r.sub} dlvrd:{r.dlvrd} submit date:{r.submit_date} "
            f"done date:{r.done_date} stat:{r.stat} err:{r.err} Text:{r.text[:20]}")


_KEY = re.compile(r"(?<![A-Za-z])(id|sub|dlvrd|submit[ _]*date|done[ _]*date|stat|err|text)\s*:",
                  re.IGNORECASE)
_NAMES = {"submitdate": "submit_date", "donedate": "done_date"}


def _name(key: str) -> str:
    bare = re.sub(r"[ _]", "", key.lower())
    return _NAMES.get(bare, bare)


def parse_receipt(text: str) -> ReceiptText:
    """The fields of a receipt text; ValueError without ``id:`` or ``stat:``. ``Text:`` runs
    to the end unless a key not yet seen follows it (then it stops there)."""
    keys = [(m.start(), m.end(), _name(m.group(1))) for m in _KEY.finditer(text)]
    found: dict[str, str] = {}
    i = 0
    while i < len(keys):
        _, value_start, name = keys[i]
        nxt = i + 1
        if name == "text":  # skip keys inside the message text itself
            while nxt < len(keys) and (keys[nxt][2] in found or keys[nxt][2] == "text"):
                nxt += 1
        value_end = keys[nxt][0] if nxt < len(keys) else len(text)
        found.setdefault(name, text[value_start:value_end].strip())
        i = nxt
    if not found.get("id") or not found.get("stat"):
        raise ValueError(f"not a delivery receipt (no id: or stat:): {text[:80]!r}")
    found["stat"] = found["stat"].upper()
    return ReceiptText(**{"sub": "", "dlvrd": "", "err": "", **found})


def receipt_tlvs(message_id: str, state: MessageState) -> dict[int, bytes]:
    """``receipted_message_id`` (a C-octet string) and ``message_state`` of a receipt."""
    return {RECEIPTED_MESSAGE_ID: message_id.encode("latin-1") + b"\0",
            MESSAGE_STATE: bytes([state])}


def read_receipt_tlvs(tlvs: dict[int, bytes]) -> tuple[str | None, MessageState | None]:
    """``(receipted_message_id, message_state)`` from a deliver_sm's TLVs, None when absent
    or unreadable (then read the text)."""
    raw_id = tlvs.get(RECEIPTED_MESSAGE_ID)
    message_id = raw_id.split(b"\0", 1)[0].decode("latin-1") if raw_id else None
    raw_state = tlvs.get(MESSAGE_STATE)
    state = None
    if raw_state and len(raw_state) == 1 and raw_state[0] in MessageState._value2member_map_:
        state = MessageState(raw_state[0])
    return message_id or None, state
