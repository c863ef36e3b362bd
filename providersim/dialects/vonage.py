"""Vonage's SMS API as the simulator plays it: ``POST`` (or ``GET``) ``/sms/json`` with the
parameters as a form, a JSON object or the query; credentials as ``api_key`` + ``api_secret``
parameters, a Basic header (what the v4 Python SDK sends), or ``api_key`` + ``sig`` signed
with the signature secret (``signing_key``). One recipient per request; ``to`` in E.164
digits (a leading ``+`` is tolerated).

Every answer is HTTP 200 with ``message-count`` and one ``messages[]`` entry per part, as
Vonage answers: ``status`` "0" with each part's ``message-id``; "1" with ``Throughput Rate
Exceeded - please wait [ ms ] and retry`` when the rate limit refuses it; "2" for a missing
parameter; "3" for an invalid number or client-ref; "4" for bad credentials; "14" for a bad
signature. An injected outage stays an HTTP 503. ``GET /account/get-balance`` (the Account
API, on the same REST host) answers ``{"value", "autoReload"}`` to the same credentials (as
query parameters or Basic), and 401 to others.

Part ids are 16 upper-case hex digits: a per-process prefix, a counter and the part index, so
the first part's id names the message in the ledger. Receipts: one signed DLR per part
(POST-JSON, Vonage's ``sig`` over every parameter, HMAC-SHA256 keyed with ``signing_key``,
upper-case hex as Vonage sends it), to the message's ``callback`` or else ``dlr_url``. A message
whose text contains ``part_fail_marker`` (when set at its acceptance) gets a failed DLR for its
last part (``err-code`` 8, network error) and delivered ones for the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from providersim.ledger import MessageIn, Sim, respond

__all__ = ["BALANCE_EUR", "MAX_TEXT", "NETWORK", "PART_FAILED_CODE", "callbacks", "router", "sign"]

NETWORK = "310260"  # the MCCMNC the simulator reports for every number
_PRICE = "0.00570000"
_FAILED_CODE = "1"  # DLR err-code "Unknown": not delivered, no cause given
PART_FAILED_CODE = "8"  # DLR err-code "Network Error": the part part_fail_marker fails
MAX_TEXT = 1600
BALANCE_EUR = 10.0
"""What ``GET /account/get-balance`` answers (``value``, in EUR), whatever was sent."""


def sign(params: dict[str, str], secret: str) -> str:
    """Vonage's HMAC-SHA256 signature of ``params`` (without ``sig``), upper-case hex."""
    text = "".join(f"&{k}={params[k].replace('&', '_').replace('=', '_')}"
                   for k in sorted(params) if k != "sig")
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def _unauthorized() -> JSONResponse:
    """The Account API's refusal of credentials it does not take (an RFC 7807 problem)."""
    problem = {"type": "https://developer.nexmo.com/api-errors#unauthorized",
               "title": "Unauthorized", "detail": "You did not provide correct credentials.",
               "instance": str(uuid.uuid4())}
    return JSONResponse(problem, status_code=401, media_type="application/problem+json")


def _answer(entries: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse({"message-count": str(len(entries)), "messages": entries})


def _error(status: str, text: str) -> JSONResponse:
    return _answer([{"status": status, "error-text": text}])


async def _params(request: Request) -> dict[str, str]:
    """The request's parameters: its query, then its body (form or JSON) over it."""
    params = dict(request.query_params)
    raw = await request.body()
    if not raw:
        return params
    if request.headers.get("content-type", "").startswith("application/json"):
        found = json.loads(raw)
        body = found if isinstance(found, dict) else {}
    else:
        body = dict(parse_qsl(raw.decode(), keep_blank_values=True))
    return {**params, **{str(k): str(v) for k, v in body.items() if v is not None}}


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        key, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return key, secret


def _auth_error(sim: Sim, params: dict[str, str], header: str | None) -> JSONResponse | None:
    """Vonage's answer to a request it does not authenticate, else None."""
    key, secret = params.get("api_key"), params.get("api_secret")
    if "sig" in params:
        if secret is not None:
            return _error("32", "Signature and API secret disallowed")
        expected = sign(params, sim.config.signing_key)
        if key != sim.config.account or not hmac.compare_digest(
                params["sig"].upper().encode(), expected.encode()):
            return _error("14", "Invalid Signature")
        return None
    if key is None and secret is None:
        key, secret = _basic(header) or (None, None)
    if key is None or secret is None:
        return _error("2", "Missing api_key or api_secret")
    if not (hmac.compare_digest(key.encode(), sim.config.account.encode())
            and hmac.compare_digest(secret.encode(), sim.config.token.encode())):
        return _error("4", "Bad Credentials")
    return None


def _part_count(text: str, unicode: bool) -> int:
    """Parts as Vonage splits a text, approximately: ``type=unicode`` (or any non-ASCII
    character) 70 per message or 67 per part, else 160 or 153."""
    wide = unicode or not text.isascii()
    single, each = (70, 67) if wide else (160, 153)
    return 1 if len(text) <= single else -(-len(text) // each)


def _refused(params: dict[str, str]) -> JSONResponse | None:
    missing = next((k for k in ("from", "to", "text") if not params.get(k)), None)
    if missing is not None:
        return _error("2", f"Missing {missing} param")
    if len(params.get("client-ref", "")) > 100:
        return _error("3", "Invalid client-ref param")
    if len(params["text"]) > MAX_TEXT:
        return _error("12", "Message Too Long")
    return None


def _throttled(denied: Response) -> Response:
    """The gate's answer in Vonage's words: its 429 becomes status "1" (HTTP 200)."""
    if denied.status_code != 429:
        return denied
    wait_ms = int(denied.headers.get("retry-after", "1")) * 1000
    return _error("1", f"Throughput Rate Exceeded - please wait [ {wait_ms} ] and retry")


def _accept(sim: Sim, params: dict[str, str]) -> Response:
    """Ledger the message; its parts' ids are the first part's with the part index."""
    digits = params["to"].removeprefix("+")
    ref = params.get("client-ref") or f"vonage-{uuid.uuid4().hex}"
    msg = MessageIn(client_ref=ref, to=f"+{digits}", body=params["text"])
    callback = params.get("callback")
    extra: dict[str, Any] = {"msisdn": digits, "from": params["from"], "callback": callback}
    marker = sim.config.part_fail_marker
    if marker and marker in params["text"]:
        extra["fail_last_part"] = True
    prefix = sim.id_prefix[4:8].upper()
    posts = callback or sim.config.dlr_url  # with neither, no DLR is ever due
    result = sim.accept([msg], extras=[extra] if posts else None,
                        new_id=lambda: f"{prefix}{next(sim.id_counter):010X}00")[0]
    if result["status"] != "accepted":
        return _error("3", "Invalid to param")
    record = sim.by_ref[ref]
    if "ids" not in record.extra:  # new: name its parts (a duplicate keeps its own)
        count = _part_count(params["text"], params.get("type") == "unicode")
        first = record.provider_message_id
        record.extra["ids"] = [f"{first[:-2]}{n:02X}" for n in range(count)]
    return _answer([{"to": digits, "message-id": part_id, "status": "0",
                     "remaining-balance": "10.00000000", "message-price": _PRICE,
                     "network": NETWORK, "client-ref": ref} for part_id in record.extra["ids"]])


def router(sim: Sim) -> APIRouter:
    router = APIRouter()

    async def send_sms(request: Request) -> Response:
        try:
            params = await _params(request)
        except (ValueError, UnicodeDecodeError):
            return await respond(sim, _error("2", "Missing Parameters"))
        refused = _auth_error(sim, params, request.headers.get("authorization")) or _refused(params)
        if refused is not None:
            return await respond(sim, refused)
        denied = sim.gate(1)
        if denied is not None:
            return await respond(sim, _throttled(denied))
        answer = _accept(sim, params)
        return await respond(sim, sim.garbled_answer() or answer)

    async def get_balance(request: Request) -> Response:
        if _auth_error(sim, dict(request.query_params), request.headers.get("authorization")):
            return await respond(sim, _unauthorized())
        return await respond(sim, JSONResponse({"value": BALANCE_EUR, "autoReload": False}))

    router.add_api_route("/sms/json", send_sms, methods=["GET", "POST"])
    router.add_api_route("/account/get-balance", get_balance, methods=["GET"])
    return router


def _dlr(sim: Sim, receipt: dict[str, Any], part_id: str) -> dict[str, str]:
    extra, now = receipt["extra"], datetime.now(UTC)
    part_failed = bool(extra.get("fail_last_part")) and part_id == extra["ids"][-1]
    delivered = receipt["status"] == "delivered" and not part_failed
    code = "0" if delivered else PART_FAILED_CODE if part_failed else _FAILED_CODE
    params = {
        "msisdn": extra["msisdn"], "to": extra["from"], "network-code": NETWORK,
        "messageId": part_id, "price": _PRICE, "status": "delivered" if delivered else "failed",
        "scts": now.strftime("%y%m%d%H%M"), "err-code": code,
        "api-key": sim.config.account, "client-ref": receipt["client_ref"],
        "message-timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
        "timestamp": str(int(time.time())), "nonce": str(uuid.uuid4()),
    }
    return {**params, "sig": sign(params, sim.config.signing_key)}


def callbacks(sim: Sim, receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One signed DLR per part of each message (a part's DLR names the part's id); all of a
    message's DLRs say its outcome, but for the last part of one marked ``fail_last_part``."""
    return [{"json": _dlr(sim, r, part_id), "url": r["extra"].get("callback")}
            for r in receipts for part_id in r["extra"]["ids"]]
