"""Plivo's Message API as the simulator speaks it, and its signed status callbacks.

``POST /v1/Account/{auth_id}/Message/`` with a JSON body (``src`` or ``powerpack_uuid``,
``dst`` numbers joined with ``<``, ``text``, ``url`` and ``method`` for the status callbacks;
other fields, such as the SDK's ``log`` and ``trackable``, are taken and ignored), HTTP Basic
auth with the Auth ID (``config.account``, also the path's) and Auth Token (``config.token``).
Numbers are sanitized as Plivo does (``/-.+()`` and spaces stripped) and deduplicated; the answer
is 202 ``{"api_id", "message": "message(s) queued", "message_uuid": [...]}`` with a uuid per valid
number in ``dst`` order, plus ``invalid_number`` when some were not valid. Errors are
``{"api_id", "error"}``: 400 for a bad request (no valid number at all: 400 naming one), 401 for
bad credentials, 429 (with Retry-After) when rate limited, 500 for an injected outage.
``GET /v1/Account/{auth_id}/`` answers the Account object (a prepaid ``standard`` account)
to the same credentials, and 401 to others.

Plivo keeps no reference of the client's, so every valid destination is a new message (its uuid
is its ledger ``client_ref`` too). Each message gets one callback, for its final status
(``delivered``, or ``undelivered`` with ``ErrorCode`` 80), form-posted to the request's ``url``
(else ``config.dlr_url``) and signed with ``X-Plivo-Signature-V3`` over that URL, the sorted form
fields and a fresh nonce, keyed with the Auth Token. The simulator always posts: ``method=GET``
callbacks are refused at send time rather than simulated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
import secrets
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlparse

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providersim.ledger import MAX_BATCH, MessageIn, Sim, respond

__all__ = ["CASH_CREDITS", "UNDELIVERED_CODE", "SendIn", "callbacks", "router", "sign_v3"]

UNDELIVERED_CODE = "80"
CASH_CREDITS = "10.00000"
"""What the Account object answers as ``cash_credits`` (USD), whatever was sent."""
"""Plivo's "destination temporarily unavailable": what a failed message reports."""

_STRIPPED = re.compile(r"[\s/\-.+()]")
_NUMBER = re.compile(r"^[1-9]\d{6,14}$")


class SendIn(BaseModel):
    """The fields of a send request the simulator reads."""

    model_config = ConfigDict(extra="ignore")

    src: Annotated[str | None, Field(min_length=1, max_length=32)] = None
    powerpack_uuid: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    dst: Annotated[str, Field(min_length=1)]
    text: Annotated[str, Field(min_length=1, max_length=1600)]
    type: Annotated[str, Field(pattern=r"^sms$")] = "sms"
    url: Annotated[str | None, Field(pattern=r"^https?://")] = None
    method: Annotated[str, Field(pattern=r"^(?i:post)$")] = "POST"


def _error(status: int, error: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"api_id": str(uuid.uuid4()), "error": error}, status_code=status,
                        headers=headers)


def _authorized(sim: Sim, auth_id: str, header: str | None) -> bool:
    scheme, _, encoded = (header or "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    expected = f"{sim.config.account}:{sim.config.token}".encode()
    given = f"{user}:{password}".encode()
    return (scheme.lower() == "basic" and auth_id == user
            and hmac.compare_digest(given, expected))


def _destinations(dst: str) -> tuple[list[str], list[str]]:
    """The valid numbers (sanitized, each once, in order) and the invalid ones as given."""
    valid: list[str] = []
    invalid: list[str] = []
    for given in dst.split("<"):
        number = _STRIPPED.sub("", given)
        if not _NUMBER.match(number):
            invalid.append(given)
        elif number not in valid:
            valid.append(number)
    return valid, invalid


def _refusal(order: SendIn, valid: list[str], invalid: list[str]) -> str | None:
    if (order.src is None) == (order.powerpack_uuid is None):
        return "specify either src or powerpack_uuid"
    if len(valid) + len(invalid) > MAX_BATCH:
        return f"dst takes at most {MAX_BATCH} destination numbers"
    if not valid:
        return f"{invalid[0]} is not a valid phone number"
    return None


def _units(text: str) -> int:
    """How many SMS parts Plivo bills for ``text`` (GSM 160/153, else UCS-2 70/67)."""
    single, part = (160, 153) if text.isascii() else (70, 67)
    return 1 if len(text) <= single else math.ceil(len(text) / part)


def _denied(sim: Sim, n: int) -> Response | None:
    """The gate's rate limit or injected outage, in Plivo's error shape."""
    denied = sim.gate(n)
    if denied is None:
        return None
    if denied.status_code == 429:
        return _error(429, "too many requests",
                      {"Retry-After": denied.headers.get("retry-after", "1")})
    return _error(500, "internal server error")


def router(sim: Sim) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/Account/{auth_id}/Message/")
    async def send_message(auth_id: str, request: Request) -> Response:
        if not _authorized(sim, auth_id, request.headers.get("authorization")):
            return await respond(sim, _error(401, "authentication failed"))
        try:
            order = SendIn.model_validate_json(await request.body())
        except ValidationError as exc:
            return await respond(sim, _error(400, f"invalid request: {exc.errors()[0]['loc']}"))
        valid, invalid = _destinations(order.dst)
        problem = _refusal(order, valid, invalid)
        if problem is not None:
            return await respond(sim, _error(400, problem))
        denied = _denied(sim, len(valid))
        if denied is not None:
            return await respond(sim, denied)
        ids = [str(uuid.uuid4()) for _ in valid]
        extra = {"url": order.url, "from": order.src or "", "units": _units(order.text)}
        wants = order.url is not None or sim.config.dlr_url is not None
        messages = [MessageIn(client_ref=i, to=f"+{n}", body=order.text)
                    for i, n in zip(ids, valid, strict=True)]
        sim.accept(messages, extras=[extra] * len(ids) if wants else None,
                   new_id=iter(ids).__next__)
        answer: dict[str, Any] = {"api_id": str(uuid.uuid4()), "message": "message(s) queued",
                                  "message_uuid": ids}
        if invalid:
            answer["invalid_number"] = invalid
        return await respond(sim, sim.garbled_answer() or JSONResponse(answer, status_code=202))

    @api.get("/v1/Account/{auth_id}/")
    async def get_account(auth_id: str, request: Request) -> Response:
        if not _authorized(sim, auth_id, request.headers.get("authorization")):
            return await respond(sim, _error(401, "authentication failed"))
        return await respond(sim, JSONResponse(_account(sim)))

    return api


def _account(sim: Sim) -> dict[str, Any]:
    """The Account object, as ``GET /v1/Account/{auth_id}/`` answers it."""
    auth_id = sim.config.account
    return {"account_type": "standard", "address": "", "api_id": str(uuid.uuid4()),
            "auth_id": auth_id, "auto_recharge": False, "billing_mode": "prepaid",
            "cash_credits": CASH_CREDITS, "city": "", "name": "hexcast simulator",
            "resource_uri": f"/v1/Account/{auth_id}/", "state": "", "timezone": "UTC"}


def sign_v3(token: str, url: str, nonce: str, form: dict[str, str]) -> str:
    """``X-Plivo-Signature-V3`` of a form POST to ``url`` (``plivo.utils.signature_v3``)."""
    parsed = urlparse(url)
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parsed.query, keep_blank_values=True)))
    base = f"{parsed.scheme}://{parsed.netloc}{parsed.path}"
    if form:
        fields = "".join(f"{k}{v}" for k, v in sorted(form.items()))
        base = f"{base}?{query}.{fields}" if query else f"{base}?{fields}"
    elif query:
        base = f"{base}?{query}"
    mac = hmac.new(token.encode(), f"{base}.{nonce}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _plivo_time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S.%f")


def _callback(sim: Sim, receipt: dict[str, Any]) -> dict[str, Any]:
    extra = receipt.get("extra") or {}
    url = extra.get("url") or sim.config.dlr_url or ""
    pmid, units, at = receipt["provider_message_id"], int(extra.get("units", 1)), receipt["at"]
    form = {
        "MessageUUID": pmid, "ParentMessageUUID": pmid, "PartInfo": "",
        "To": receipt["to"].lstrip("+"), "From": extra.get("from", ""), "Type": "sms",
        "Status": "delivered" if receipt["status"] == "delivered" else "undelivered",
        "Units": str(units), "TotalRate": "0.00500", "TotalAmount": f"{0.005 * units:.5f}",
        "Sequence": "1", "MessageTime": _plivo_time(at), "DeliveryReportTime": _plivo_time(at),
        "PowerpackUUID": "",
    }
    if form["Status"] != "delivered":
        form["ErrorCode"] = UNDELIVERED_CODE
    nonce = str(secrets.randbelow(10**20)).zfill(20)
    signature = sign_v3(sim.config.token, url, nonce, form)
    headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-Ma-V3": signature,
               "X-Plivo-Signature-V3-Nonce": nonce}
    return {"url": url or None, "headers": headers, "data": form}


def callbacks(sim: Sim, receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One signed form post per message, to the url its request named (else ``dlr_url``)."""
    return [_callback(sim, r) for r in receipts]
