"""Deterministic message keys: the same cause always yields the same key."""

from __future__ import annotations

import hashlib
from datetime import date

__all__ = ["bulk_key", "confirmation_key", "geo_key", "message_key", "otp_key"]


def _digest(*parts: object) -> str:
    raw = "\x1f".join(map(str, parts))
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def geo_key(*, tenant_id: int, promotion_id: int, user_id: str, local_date: date) -> str:
    """One geo offer per tenant, promotion, recipient and local day."""
    return "geo-" + _digest("geo", tenant_id, promotion_id, user_id, local_date.isoformat())


def bulk_key(*, campaign_run_id: int, recipient_id: int) -> str:
    """One message per campaign run and recipient."""
    return "blk-" + _digest("bulk", campaign_run_id, recipient_id)


def otp_key(*, tenant_id: int, idempotency_key: str) -> str:
    """One OTP per tenant and caller-supplied idempotency key."""
    return "otp-" + _digest("otp", tenant_id, idempotency_key)


def message_key(*, tenant_id: int, idempotency_key: str, index: int) -> str:
    """The ``index``-th message of one ``POST /v1/messages`` (per tenant and Idempotency-Key)."""
    return "msg-" + _digest("message", tenant_id, idempotency_key, index)


def confirmation_key(*, tenant_id: int, inbound_id: int) -> str:
    """The one confirmation answering one inbound STOP/START/HELP."""
    return "cfm-" + _digest("confirmation", tenant_id, inbound_id)
