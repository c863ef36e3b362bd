"""A message's outcome from the receipts of its parts. Pure: no I/O.

A multi-part message is delivered only when every part is; the first part that fails (or
expires) decides it at once; a part the provider cannot tell about (``unknown``) leaves the
message undecided. A part's receipts only move forward: a final status is never replaced
(duplicated or out-of-order callbacks change nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sender.providers.status import DeliveryStatus, ErrorClass

__all__ = ["PartReceipt", "advances", "outcome"]

_RANK = {DeliveryStatus.ACCEPTED: 0, DeliveryStatus.SENT: 1}


@dataclass(frozen=True, slots=True)
class PartReceipt:
    part: int
    parts: int
    status: DeliveryStatus
    code: str | None = None
    error_class: ErrorClass | None = None


def advances(old: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """Whether a part's ``new`` status may replace ``old`` (forward only; finals stay)."""
    if old is None:
        return True
    if old.final:
        return False
    return new.final or _RANK.get(new, 2) > _RANK.get(old, 2)


def outcome(parts: Sequence[PartReceipt]) -> tuple[DeliveryStatus, PartReceipt | None] | None:
    """The message's final status and the part that decided a failure, or None while it is
    open. ``parts``: the latest receipt of each part heard of."""
    if not parts:
        return None
    for bad in (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED):
        decided = next((p for p in sorted(parts, key=lambda p: p.part) if p.status is bad), None)
        if decided is not None:
            return bad, decided
    total = max(p.parts for p in parts)
    delivered = {p.part for p in parts if p.status is DeliveryStatus.DELIVERED}
    if len(delivered) >= total:
        return DeliveryStatus.DELIVERED, None
    return None
