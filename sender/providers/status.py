"""The status model: what every provider's statuses and error codes mean in hexcast's terms.
Pure: no I/O.

- :class:`DeliveryStatus`: where a receipt puts a message (``accepted``/``sent`` are not final;
  ``delivered``, ``failed``, ``expired`` are; ``unknown`` when the provider cannot say).
- :class:`ErrorClass`: what a failure means for what we do next: retry later (throttled, never
  processed), permanent for this message (an invalid number), the recipient opted out at the
  carrier (record an opt-out and suppress), filtered as spam, or undelivered by the handset or
  network.
- :class:`StatusTable`: one per provider adapter (``sender/providers/<kind>.py``), mapping its
  status words and error codes; ``docs/PROVIDERS.md`` lists every row and a test keeps both equal.

The generic JSON dialect's receipts are below: its batch API posts JSON batches that carry our
client reference; the
single-message API (Twilio-like) posts one form-encoded status callback per message that
carries only the provider's message id (``MessageSid``) and its ``MessageStatus``. Both become
``(status, error)`` with status ``delivered`` or ``failed``; intermediate statuses (queued,
sent, ...) are not final and are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DeliveryStatus", "ErrorClass", "StatusCallback", "StatusTable"]


class DeliveryStatus(StrEnum):
    ACCEPTED = "accepted"  # taken by the provider, not yet sent on (not final)
    SENT = "sent"  # handed to the carrier (not final)
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"  # its validity passed before delivery
    UNKNOWN = "unknown"  # the provider cannot tell (final for it)

    @property
    def final(self) -> bool:
        return self not in (DeliveryStatus.ACCEPTED, DeliveryStatus.SENT)


class ErrorClass(StrEnum):
    RETRY_LATER = "retry_later"  # throttled or queue full: not processed, send again later
    PERMANENT = "permanent"  # this message can never go (invalid number, bad content)
    OPTED_OUT = "opted_out"  # the recipient unsubscribed at the carrier: record an opt-out
    FILTERED = "filtered"  # blocked as spam by the carrier or the provider
    UNDELIVERED = "undelivered"  # the handset or network did not take it


@dataclass(frozen=True, slots=True)
class StatusTable:
    """One provider's status words → :class:`DeliveryStatus` and error codes → :class:`ErrorClass`
    (a code not listed is ``default_error``)."""

    kind: str
    statuses: Mapping[str, DeliveryStatus]
    errors: Mapping[str, ErrorClass]
    default_error: ErrorClass = ErrorClass.UNDELIVERED

    def status(self, word: str) -> DeliveryStatus:
        """The status a provider's word means; a word not listed is ``unknown``."""
        return self.statuses.get(word.lower(), DeliveryStatus.UNKNOWN)

    def error(self, code: str | None) -> ErrorClass | None:
        """What an error code means; None without a code."""
        return None if code is None else self.errors.get(str(code), self.default_error)

_FINAL = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}


class StatusCallback(BaseModel):
    """A Twilio-like status callback (form fields; others such as AccountSid are ignored)."""

    model_config = ConfigDict(extra="ignore")

    MessageSid: Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    MessageStatus: Literal[
        "accepted", "scheduled", "queued", "sending", "sent", "receiving", "received",
        "delivered", "undelivered", "failed", "read", "canceled",
    ]
    ErrorCode: Annotated[str | None, Field(max_length=16)] = None

    def final(self) -> tuple[str, str | None] | None:
        """``(delivered|failed, error)`` for a final status, else None."""
        status = _FINAL.get(self.MessageStatus)
        if status is None:
            return None
        error = None if status == "delivered" else f"provider error {self.ErrorCode or 'unknown'}"
        return status, error
