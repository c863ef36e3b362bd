"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``.

Secrets are shown to tenants as ``whsec_<base64 of 32 random bytes>``; the key is the decoded
bytes. During a rotation's overlap a request carries one signature per valid secret, space
separated, and a receiver holding either secret verifies it.

Batches are not in the specification (it defines one event per request); ours are a JSON array
of events, each with its own ``id``, sent under a ``webhook-id`` of their own: :func:`batch_id`,
derived from the event ids, so the same batch retried keeps its id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from hexcast.core.errors import InvalidInput

__all__ = ["SECRET_PREFIX", "batch_id", "new_secret", "sign", "signature_header"]

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh ``whsec_`` secret (32 random bytes: the spec asks 24 to 64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise InvalidInput("a webhook secret is base64 after whsec_") from None


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,…`` signature of ``body`` sent as ``webhook_id`` at ``timestamp`` (seconds)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secret_list: Sequence[str], webhook_id: str, timestamp: int,
                     body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space separated."""
    return " ".join(sign(s, webhook_id, timestamp, body) for s in secret_list)


def batch_id(event_ids: Sequence[str]) -> str:
    """The ``webhook-id`` of a batch: ``batch_`` and a digest of its event ids, in order."""
    digest = hashlib.sha256("\n".join(event_ids).encode()).hexdigest()
    return f"batch_{digest[:32]}"
