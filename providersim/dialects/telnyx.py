"""Telnyx's Messaging API v2 as the simulator speaks it: ``POST /v2/messages`` (JSON, one
recipient, ``Authorization: Bearer <token>``), answered 200 ``{"data": {...}}`` or
``{"errors": [{"code", "title", "detail", "source"}]}`` with Telnyx's codes: 10009 (401, bad
key), 10004/10015/10023 (400, missing parameter, bad request, bad JSON), 40310 (400, invalid
'to' address), 10011 (429, throttled, with ``x-ratelimit-*`` headers), 10007 (503, outage).
``GET /v2/balance`` answers the account's balance (:data:`BALANCE`) to the same key.

``Idempotency-Key`` is the ledger's client reference: a request repeated with the same key
answers the first message again and sends nothing (Telnyx replays the first success);
without one every request is a new message.

Webhooks: each receipt is two events, ``message.sent`` then ``message.finalized``, posted to
the message's ``webhook_url`` (else the profile's: ``dlr_url``) and signed as Telnyx signs
them: Ed25519 over ``"{telnyx-timestamp}|{body}"`` in ``telnyx-signature-ed25519`` (base64).
The simulator's private key is derived from ``signing_key``: its SHA-256 is the 32-byte
Ed25519 seed; :func:`public_key` gives the public half (base64) a client verifies with.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import time
import uuid
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providersim.ledger import MessageIn, Sim, respond
from providersim.outbox import iso_now

__all__ = ["BALANCE", "FAILED_ERROR", "SendIn", "callbacks", "private_key", "public_key", "router"]

FAILED_ERROR = {"code": "40008", "title": "Undeliverable",
                "detail": "The recipient carrier did not accept the message."}
"""The error of a failed message's ``message.finalized`` event."""

BALANCE = {"record_type": "balance", "balance": "300.00", "credit_limit": "100.00",
           "available_credit": "400.00", "pending": "0.00", "currency": "USD"}
"""What ``GET /v2/balance`` answers as its ``data``, whatever was sent."""

_TO_ERROR = ("40310", "Invalid 'to' address", "The 'to' address should be a single valid number.")


@functools.lru_cache(maxsize=8)
def private_key(signing_key: str) -> Ed25519PrivateKey:
    """The Ed25519 key the simulator signs with: seed = SHA-256(``signing_key``)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(signing_key.encode()).digest())


def public_key(signing_key: str) -> str:
    """The public key (base64 of the 32 raw bytes) verifying webhooks signed with ``signing_key``."""
    raw = private_key(signing_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


class SendIn(BaseModel):
    """The fields of a send request the simulator reads (others, such as ``media_urls``,
    are accepted and ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    to: str | Annotated[list[str], Field(min_length=1)]
    from_: Annotated[str | None, Field(alias="from", min_length=1)] = None
    messaging_profile_id: Annotated[str | None, Field(min_length=1)] = None
    text: Annotated[str, Field(min_length=1, max_length=1600)]
    type: Literal["SMS", "MMS"] = "SMS"
    webhook_url: str | None = None
    use_profile_webhooks: bool = True


def _errors(status: int, code: str, title: str, detail: str, *, pointer: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "title": title, "detail": detail}
    if pointer is not None:
        error["source"] = {"pointer": pointer}
    return JSONResponse({"errors": [error]}, status_code=status, headers=headers)


def _invalid(exc: ValidationError) -> JSONResponse:
    first = exc.errors()[0]
    pointer = "/" + "/".join(str(p) for p in first["loc"]) if first["loc"] else None
    if first["type"] == "json_invalid":
        return _errors(400, "10023", "Invalid JSON", "The supplied JSON is not valid.")
    if pointer and pointer.startswith("/to"):
        return _errors(400, *_TO_ERROR, pointer="/to")
    if first["type"] == "missing":
        return _errors(400, "10004", "Missing required parameter",
                       "A required parameter was missing.", pointer=pointer)
    return _errors(400, "10015", "Bad Request", str(first["msg"]), pointer=pointer)


def _denied(gated: Response) -> JSONResponse:
    """The generic gate's 429/503 in Telnyx's words."""
    if gated.status_code == 429:
        wait = gated.headers.get("retry-after", "1")
        headers = {"x-ratelimit-limit": "1", "x-ratelimit-remaining": "0", "x-ratelimit-reset": wait}
        return _errors(429, "10011", "Too many requests",
                       "You have exceeded the maximum number of allowed requests.", headers=headers)
    return _errors(503, "10007", "Unexpected error", "An unexpected error occured.")


def _parts(text: str) -> int:
    """Segments: GSM-7 (160, or 153 per part) when ASCII, else UCS-2 (70, or 67 per part)."""
    single, multi = (160, 153) if text.isascii() else (70, 67)
    return 1 if len(text) <= single else math.ceil(len(text) / multi)


def _destination(msg: SendIn) -> str | None:
    if isinstance(msg.to, str):
        return msg.to
    return msg.to[0] if len(msg.to) == 1 else None


def _ledger_ref(request: Request) -> str:
    key = request.headers.get("idempotency-key")
    if not key:
        return f"telnyx-{uuid.uuid4()}"
    return key if len(key) <= 128 else hashlib.sha256(key.encode()).hexdigest()


def _message(msg: SendIn, to: str, pmid: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` of an accepted send, as Telnyx answers it."""
    return {
        "record_type": "message", "direction": "outbound", "id": pmid, "type": msg.type,
        "messaging_profile_id": msg.messaging_profile_id,
        "from": {"phone_number": msg.from_, "carrier": "", "line_type": ""},
        "to": [{"phone_number": to, "status": "queued", "carrier": "", "line_type": "Wireless"}],
        "text": msg.text, "encoding": "GSM-7" if msg.text.isascii() else "UCS-2",
        "parts": extra["parts"], "errors": [], "tags": [], "media": [], "cc": [],
        "webhook_url": msg.webhook_url, "webhook_failover_url": None,
        "received_at": iso_now(), "sent_at": None, "completed_at": None, "valid_until": None,
    }


def router(sim: Sim) -> APIRouter:
    router = APIRouter(prefix="/v2")

    @router.post("/messages")
    async def send_message(request: Request) -> Response:
        if not _authorized(sim, request):
            return _unauthorized()
        try:
            msg = SendIn.model_validate_json(await request.body())
        except ValidationError as exc:
            return _invalid(exc)
        if msg.from_ is None and msg.messaging_profile_id is None:
            return _errors(400, "10004", "Missing required parameter",
                           "Either 'from' or 'messaging_profile_id' is required.", pointer="/from")
        to = _destination(msg)
        if to is None:
            return _errors(400, *_TO_ERROR, pointer="/to")
        gated = sim.gate(1)
        if gated is not None:
            return await respond(sim, _denied(gated))
        url = msg.webhook_url if msg.webhook_url else None
        extra = {"parts": _parts(msg.text), "from": msg.from_, "webhook_url": url,
                 "profile": msg.messaging_profile_id}
        keep = url is not None or sim.config.dlr_url is not None  # else no webhook at all
        ledger_in = MessageIn(client_ref=_ledger_ref(request), to=to, body=msg.text)
        result = sim.accept([ledger_in], extras=[extra] if keep else None,
                            new_id=lambda: str(uuid.uuid4()))[0]
        if result["status"] == "rejected":
            return await respond(sim, _errors(400, *_TO_ERROR, pointer="/to"))
        answer = JSONResponse({"data": _message(msg, to, result["provider_message_id"], extra)})
        return await respond(sim, sim.garbled_answer() or answer)

    @router.get("/balance")
    async def balance(request: Request) -> Response:
        if not _authorized(sim, request):
            return await respond(sim, _unauthorized())
        return await respond(sim, JSONResponse({"data": BALANCE}))

    return router


def _authorized(sim: Sim, request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {sim.config.token}"


def _unauthorized() -> JSONResponse:
    return _errors(401, "10009", "Authentication failed", "The required authentication "
                   "headers were either invalid or not included in the request.")


def _event(kind: str, receipt: dict[str, Any], word: str) -> dict[str, Any]:
    extra: dict[str, Any] = receipt.get("extra") or {}
    final = kind == "message.finalized"
    payload = {
        "record_type": "message", "direction": "outbound", "id": receipt["provider_message_id"],
        "type": "SMS", "messaging_profile_id": extra.get("profile"),
        "from": {"phone_number": extra.get("from")},
        "to": [{"phone_number": receipt["to"], "status": word}],
        "parts": extra.get("parts", 1),
        "errors": [FAILED_ERROR] if word == "delivery_failed" else [],
        "webhook_url": extra.get("webhook_url"),
        "sent_at": receipt["at"], "completed_at": receipt["at"] if final else None,
    }
    return {"data": {"record_type": "event", "id": str(uuid.uuid4()), "event_type": kind,
                     "occurred_at": receipt["at"], "payload": payload},
            "meta": {"attempt": 1, "delivered_to": extra.get("webhook_url")}}


def _signed(sim: Sim, event: dict[str, Any], url: str | None) -> dict[str, Any]:
    body = json.dumps(event).encode()
    stamp = str(int(time.time()))
    signature = private_key(sim.config.signing_key).sign(stamp.encode() + b"|" + body)
    headers = {"Content-Type": "application/json", "telnyx-timestamp": stamp,
               "telnyx-signature-ed25519": base64.b64encode(signature).decode()}
    request: dict[str, Any] = {"headers": headers, "content": body}
    if url:
        request["url"] = url
    return request


def callbacks(sim: Sim, receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two signed webhooks per message: ``message.sent``, then ``message.finalized``
    (``delivered`` or ``delivery_failed`` with error 40008), signed when built (a retried
    post is signed anew, with a fresh timestamp)."""
    requests = []
    for receipt in receipts:
        url = (receipt.get("extra") or {}).get("webhook_url")
        final = "delivered" if receipt["status"] == "delivered" else "delivery_failed"
        requests.append(_signed(sim, _event("message.sent", receipt, "sent"), url))
        requests.append(_signed(sim, _event("message.finalized", receipt, final), url))
    return requests
