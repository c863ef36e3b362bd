"""Dead letters: what an agent could not process, with why and the payload to replay it.

Every agent and worker loop writes its letters to ``send.dlq`` (one partition). A letter holds
the record it could not process, or, when one item of a record failed, a record holding only
that item (the record's other items went on), so ``hexcast dlq replay`` replays just that.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple, TypeVar

from hexcast.core.wire import WireRecord

__all__ = ["DeadLetter", "Letter", "dead_letter", "screen_all"]

_REASON_MAX = 2000
W = TypeVar("W", bound=WireRecord)


class DeadLetter(WireRecord):
    """Topic ``send.dlq``: what failed for good, with why, and the original payload."""

    source_topic: str
    key: str | None
    reason: str
    payload: str
    at: datetime


class Letter(NamedTuple):
    """A letter to write: the source record's key, the payload to keep, and why."""

    key: bytes | None
    payload: bytes
    reason: str


def dead_letter(source: str, key: bytes | None, reason: str, payload: bytes) -> bytes:
    """The encoded :class:`DeadLetter`. Undecodable bytes in the key or payload become U+FFFD
    and the reason keeps only what JSON can carry, so writing a letter never fails."""
    return DeadLetter(
        source_topic=source,
        key=key.decode(errors="replace") if key is not None else None,
        reason=reason[:_REASON_MAX].encode("utf-8", "backslashreplace").decode(),
        payload=payload.decode(errors="replace"),
        at=datetime.now(UTC),
    ).encode()


def screen_all(
    model: type[W], records: Sequence[tuple[bytes | None, bytes]], *, what: str
) -> tuple[list[tuple[bytes | None, W]], list[Letter]]:
    """Each record read with :meth:`~hexcast.core.wire.WireRecord.screen`: the valid part of each
    (with its key), and a letter per item or record refused, its reason starting with ``what``."""
    valid: list[tuple[bytes | None, W]] = []
    letters: list[Letter] = []
    for key, value in records:
        screened = model.screen(value)
        if screened.record is not None:
            valid.append((key, screened.record))
        letters += [Letter(key, payload, f"{what}: {why}") for payload, why in screened.refused]
    return valid, letters
