"""What the SMSC does with a submit_sm: an id per part, long messages put back together and
ledgered once (in the simulator's shared ledger, so ``/ledger`` shows SMPP traffic too), the
outcome of each message, the receipt each part gets, and the state ``query_sm`` reads.

``deliver_fail_rate`` picks messages (the same pick for all the parts of a long one); a long
message picked fails at its last part only (the earlier ones are delivered, as when one part is
lost on the way), so its receipts show one failed part deciding the message."""

from __future__ import annotations

import hashlib
import itertools
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hexcast.core.smpp.concat import ESM_UDHI, Part, decode_text, reassemble, segment_of
from hexcast.core.smpp.gsm import GSM_BASIC, encode_gsm7
from hexcast.core.smpp.pdu import NETWORK_ERROR_CODE, DeliverSm, Status, SubmitSm
from hexcast.core.smpp.receipt import (
    MessageState,
    ReceiptText,
    format_receipt,
    receipt_date,
    receipt_tlvs,
)
from providersim.ledger import MessageIn, Sim
from providersim.metrics import count_fault

__all__ = ["ESM_RECEIPT", "Receipt", "SmscBook", "TrackedPart", "e164"]

ESM_RECEIPT = 0x04
_ABSENT_SUBSCRIBER = b"\x03\x00\x1b"  # network_error_code: GSM, MAP error 27
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")  # as the ledger checks numbers
_STATE_OF_RECORD = {"accepted": MessageState.ENROUTE, "delivered": MessageState.DELIVERED,
                    "failed": MessageState.UNDELIVERABLE}


def e164(addr: str, ton: int) -> str:
    """An SMPP address as the ledger keeps numbers: international (TON 1) or bare digits get
    a ``+``."""
    if addr.startswith("+") or not (ton == 1 or addr.isdigit()):
        return addr
    return "+" + addr


@dataclass(slots=True)
class TrackedPart:
    """One submitted part, by its message id: what query_sm answers."""

    key: str
    submitted: datetime
    state: MessageState = MessageState.ENROUTE
    done: datetime | None = None


@dataclass(slots=True)
class Receipt:
    """A deliver_sm waiting to go to a receiver bind; ``part_id`` set for a receipt."""

    system_id: str
    body: DeliverSm
    part_id: str | None = None
    state: MessageState | None = None


@dataclass(slots=True)
class _Assembly:
    parts: dict[int, Part] = field(default_factory=dict)
    part_ids: list[str] = field(default_factory=list)


class SmscBook:
    """Submissions of every bind, over the simulator's :class:`Sim`."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self._ids = itertools.count((uuid.uuid4().int & 0xFFFFFFF) << 28)
        self.parts: dict[str, TrackedPart] = {}
        self._assembling: dict[tuple[str, ...], _Assembly] = {}

    def new_id(self) -> str:
        return f"{next(self._ids):x}"

    def submit(self, system_id: str, sm: SubmitSm) -> tuple[Status, str, list[Receipt]]:
        """Answer one submit_sm: ``(status, message_id, receipts to send)``."""
        to = e164(sm.destination_addr, sm.dest_addr_ton)
        if not _E164.match(to):
            return Status.ESME_RINVDSTADR, "", []
        part = Part.of(sm)
        try:
            segment = segment_of(part)
        except ValueError:
            return Status.ESME_RINVESMCLASS, "", []
        part_id = self.new_id()
        now = datetime.now(UTC)
        ref = "-" if segment is None else f"{segment.reference}/{segment.total}"
        head = (system_id, sm.source_addr, to, ref, str(sm.data_coding))
        assembly = self._assembling.setdefault(head, _Assembly())
        assembly.parts[segment.number if segment else 1] = part
        key = "|".join(head)  # until the whole text is known
        if segment is None or len(assembly.parts) >= segment.total:
            del self._assembling[head]
            try:
                text = reassemble(assembly.parts.values())
            except ValueError:
                return Status.ESME_RSUBMITFAIL, "", []
            key = self._ledger(sm.source_addr, to, ref, text, assembly.part_ids[:1] or [part_id])
            for earlier in assembly.part_ids:
                self.parts[earlier].key = key
        assembly.part_ids.append(part_id)
        self.parts[part_id] = TrackedPart(key, now)
        fate = key if segment is None else "|".join(head)  # one pick for all of a message's parts
        failed = self.failed(fate) and (segment is None or segment.number == segment.total)
        return Status.ESME_ROK, part_id, self._receipts(system_id, sm, part_id, failed, now)

    def _ledger(self, source: str, to: str, ref: str, text: str, first_id: list[str]) -> str:
        """Ledger a whole message once; its ledger id is its first part's."""
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        key = f"smpp:{source}:{to}:{ref}:{digest}"
        msg = MessageIn.model_construct(client_ref=key, to=to, body=text)
        self.sim.accept([msg], new_id=lambda: first_id[0], post_receipts=False)
        return key

    def failed(self, key: str) -> bool:
        """This message's outcome under ``deliver_fail_rate``: the same for all its parts."""
        rate = self.sim.config.deliver_fail_rate
        digest = hashlib.sha1(f"{self.sim.config.seed}:{key}".encode()).digest()
        return rate > 0 and int.from_bytes(digest[:4], "big") / 2**32 < rate

    def _receipts(self, system_id: str, sm: SubmitSm, part_id: str, failed: bool,
                  now: datetime) -> list[Receipt]:
        wanted = sm.registered_delivery & 0x03
        if wanted not in (1, 2) or (wanted == 2 and not failed):
            return []
        count_fault("failed_delivery", int(failed))
        state = MessageState.UNDELIVERABLE if failed else MessageState.DELIVERED
        stat, err = ("UNDELIV", "027") if failed else ("DELIVRD", "000")
        shown = part_id if self.sim.config.smpp_id_format == "hex" else str(int(part_id, 16))
        excerpt = "".join(c if c in GSM_BASIC else "?" for c in _excerpt(sm))
        text = format_receipt(ReceiptText(shown, "001", "000" if failed else "001",
                                          receipt_date(now), receipt_date(now), stat, err, excerpt))
        tlvs = receipt_tlvs(part_id, state)
        if failed:
            tlvs[NETWORK_ERROR_CODE] = _ABSENT_SUBSCRIBER
        body = DeliverSm(source_addr_ton=sm.dest_addr_ton, source_addr_npi=sm.dest_addr_npi,
                         source_addr=sm.destination_addr, dest_addr_ton=sm.source_addr_ton,
                         dest_addr_npi=sm.source_addr_npi, destination_addr=sm.source_addr,
                         esm_class=ESM_RECEIPT, short_message=encode_gsm7(text), tlvs=tlvs)
        return [Receipt(system_id, body, part_id, state)]

    def settled(self, part_id: str, state: MessageState) -> None:
        """A part's receipt went out: its state is final, and its message's in the ledger
        (failed once any part failed)."""
        tracked = self.parts.get(part_id)
        if tracked is None:
            return
        tracked.state, tracked.done = state, datetime.now(UTC)
        rec = self.sim.by_ref.get(tracked.key)
        if rec is not None:
            kept = state == MessageState.DELIVERED and rec.status != "failed"
            rec.status = "delivered" if kept else "failed"

    def query(self, message_id: str) -> tuple[MessageState, str] | None:
        """``(message_state, final_date)`` of a part; None for an id never given."""
        tracked = self.parts.get(message_id)
        if tracked is None:
            return None
        if tracked.done is not None:
            return tracked.state, tracked.done.strftime("%y%m%d%H%M%S") + "000+"
        rec = self.sim.by_ref.get(tracked.key)
        return _STATE_OF_RECORD.get(rec.status if rec else "accepted", MessageState.ENROUTE), ""


def _excerpt(sm: SubmitSm) -> str:
    """The first characters of a part, if they decode on their own."""
    data = sm.short_message
    if sm.esm_class & ESM_UDHI and data:
        data = data[data[0] + 1 :]
    try:
        return decode_text(sm.data_coding, data)[:20]
    except ValueError:
        return ""
