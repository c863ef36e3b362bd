"""The status model: delivery receipts of every provider API, normalised to one form. Pure: no I/O.

The batch API (Sinch/Plivo-like) posts JSON batches that carry our client reference; the
single-message API (Twilio-like) posts one form-encoded status callback per message that
carries only the provider's message id (``MessageSid``) and its ``MessageStatus``. Both become
``(status, error)`` with status ``delivered`` or ``failed``; intermediate statuses (queued,
sent, ...) are not final and are ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StatusCallback"]

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
