"""Twilio's Programmable Messaging API as the simulator plays it: form POST
``/2010-04-01/Accounts/{AccountSid}/Messages.json`` with Basic auth (``account``:``token``),
one recipient per request, 201 with the Message JSON, errors as Twilio's JSON
(``code``, ``message``, ``more_info``, ``status``), and status callbacks (``sent``, then
``delivered`` or ``undelivered``) posted to each message's StatusCallback, signed with
``X-Twilio-Signature`` by the auth token. ``GET /2010-04-01/Accounts/{AccountSid}.json``
answers the Account resource (an ``active`` full account), authenticated as sending is.

Twilio keeps no client reference, so each request is a new message (its SID is its ledger
reference): a resent message shows up twice in the ledger, as it would be sent twice.
The magic numbers of Twilio's test credentials answer as Twilio documents them
(``To`` +15005550001 invalid, …0004 opted out; ``From`` …0001 invalid, …0008 queue full).
A ``ValidityPeriod`` must be a whole number of seconds from 1 to 36,000 (else Twilio's 400 with
code 21624); the ledger item keeps it (with ``From``) in its ``extra``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from providersim.dialects.generic import UNDELIVERABLE_CODE
from providersim.ledger import MessageIn, Sim, respond

__all__ = ["API_VERSION", "FROM_MAGIC", "TO_MAGIC", "callbacks", "router"]

API_VERSION = "2010-04-01"
MAX_BODY = 1600
VALIDITY_S = range(1, 36_001)
"""The ``ValidityPeriod`` values Twilio takes (its default is the longest, 10 hours)."""

TO_MAGIC: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently reachable "
                            "using the 'From' phone number via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region "
                            "indicated by the 'To' number: +15005550003."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
"""Twilio's test-credential magic ``To`` numbers and the errors they answer."""

FROM_MAGIC: dict[str, tuple[int, str]] = {
    "+15005550001": (21212, "The 'From' number +15005550001 is not a valid phone number, "
                            "shortcode, or alphanumeric sender ID."),
    "+15005550007": (21606, "The 'From' phone number provided is not a valid message-capable "
                            "Twilio phone number for this destination/account"),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued "
                            "messages"),
}
"""Twilio's test-credential magic ``From`` numbers and the errors they answer."""


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"code": code, "message": message, "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}"}
    return JSONResponse(body, status_code=status, headers=headers)


def _authorized(sim: Sim, header: str | None) -> bool:
    pair = f"{sim.config.account}:{sim.config.token}".encode()
    expected = "Basic " + base64.b64encode(pair).decode("ascii")
    return hmac.compare_digest((header or "").encode(), expected.encode())


def _refused(sim: Sim, account_sid: str, header: str | None, resource: str) -> JSONResponse | None:
    """Twilio's 401 for credentials it does not take, its 404 for another account's
    ``resource`` (under ``/Accounts/{account_sid}``), else None."""
    if not _authorized(sim, header):
        return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
    if account_sid != sim.config.account:
        return _error(404, 20404, f"The requested resource /{API_VERSION}/Accounts/{account_sid}"
                                  f"{resource} was not found")
    return None


def _account(sim: Sim) -> dict[str, Any]:
    """The Account resource, as ``GET /2010-04-01/Accounts/{AccountSid}.json`` answers it."""
    sid, created = sim.config.account, format_datetime(datetime.now(UTC))
    uri = f"/{API_VERSION}/Accounts/{sid}"
    return {
        "auth_token": sim.config.token, "date_created": created, "date_updated": created,
        "friendly_name": "hexcast simulator", "owner_account_sid": sid, "sid": sid,
        "status": "active", "type": "Full", "uri": f"{uri}.json",
        "subresource_uris": {"messages": f"{uri}/Messages.json", "balance": f"{uri}/Balance.json"},
    }


def _segments(body: str) -> int:
    """Segments as Twilio counts them, approximately: ASCII as GSM-7 (160, or 153 per part),
    anything else as UCS-2 (70, or 67 per part)."""
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else math.ceil(len(body) / part)


def _invalid(form: dict[str, str]) -> JSONResponse | None:
    """Twilio's 400 for a request it will not take, else None."""
    to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
    if not to:
        return _error(400, 21604, "A 'To' phone number is required.")
    if not (sender or form.get("MessagingServiceSid")):
        return _error(400, 21603, "A 'From' phone number is required.")
    if not body:
        return _error(400, 21602, "Message body is required.")
    if len(body) > MAX_BODY:
        return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    validity = form.get("ValidityPeriod")
    if validity is not None and not (validity.isdigit() and int(validity) in VALIDITY_S):
        return _error(400, 21624, "Validity period can only be set to integers between 1 and "
                                  "36,000 seconds (10 hours max).")
    for found in (FROM_MAGIC.get(sender), TO_MAGIC.get(to)):
        if found is not None:
            return _error(400, *found)
    return None


def _message(sim: Sim, sid: str, form: dict[str, str]) -> dict[str, Any]:
    """The Message resource Twilio answers at creation."""
    now = format_datetime(datetime.now(UTC))
    account = sim.config.account
    uri = f"/{API_VERSION}/Accounts/{account}/Messages/{sid}"
    service = form.get("MessagingServiceSid")
    return {
        "account_sid": account, "api_version": API_VERSION, "body": form["Body"],
        "date_created": now, "date_sent": None, "date_updated": now,
        "direction": "outbound-api", "error_code": None, "error_message": None,
        "from": form.get("From"), "messaging_service_sid": service, "num_media": "0",
        "num_segments": "0" if service else str(_segments(form["Body"])),
        "price": None, "price_unit": "USD", "sid": sid,
        "status": "accepted" if service else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"}, "to": form["To"], "uri": f"{uri}.json",
    }


def router(sim: Sim) -> APIRouter:
    router = APIRouter(prefix=f"/{API_VERSION}")

    async def fetch_account(account_sid: str, request: Request) -> Response:
        refused = _refused(sim, account_sid, request.headers.get("authorization"), ".json")
        return await respond(sim, refused or JSONResponse(_account(sim)))

    async def create_message(account_sid: str, request: Request) -> Response:
        denied = _refused(sim, account_sid, request.headers.get("authorization"), "/Messages.json")
        if denied is not None:
            return await respond(sim, denied)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"),
                              keep_blank_values=True))
        refused = _invalid(form)
        if refused is not None:
            return await respond(sim, refused)
        denied = sim.gate(1)
        if denied is not None:  # Twilio's own answers (it sends no Retry-After)
            if denied.status_code == 429:
                return await respond(sim, _error(429, 20429, "Too Many Requests"))
            return await respond(sim, _error(503, 20503, "Service Unavailable"))
        sid = "SM" + uuid.uuid4().hex
        extra = {k: form[k] for k in ("StatusCallback", "From", "MessagingServiceSid",
                                      "ValidityPeriod") if form.get(k)}
        msg = MessageIn(client_ref=sid, to=form["To"], body=form["Body"])
        if sim.accept([msg], extras=[extra], new_id=lambda: sid)[0]["status"] == "rejected":
            return await respond(sim, _error(400, 21211, f"The 'To' number {form['To']} is not "
                                                         "a valid phone number."))
        answer = JSONResponse(_message(sim, sid, form), status_code=201)
        return await respond(sim, sim.garbled_answer() or answer)

    router.add_api_route("/Accounts/{account_sid}/Messages.json", create_message,
                         methods=["POST"], status_code=201)
    router.add_api_route("/Accounts/{account_sid}.json", fetch_account, methods=["GET"])
    return router


def _signature(token: str, url: str, form: dict[str, str]) -> str:
    """How Twilio signs a callback: the URL and the sorted form names and values, HMAC-SHA1
    with the auth token, base64."""
    signed = url + "".join(f"{name}{form[name]}" for name in sorted(form))
    digest = hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _forms(sim: Sim, receipt: dict[str, Any]) -> list[dict[str, str]]:
    """The status callbacks of one message: ``sent``, then its final status."""
    extra = receipt.get("extra", {})
    base = {"AccountSid": sim.config.account, "ApiVersion": API_VERSION,
            "MessageSid": receipt["provider_message_id"], "SmsSid": receipt["provider_message_id"],
            "To": receipt["to"]}
    base.update({k: extra[k] for k in ("From", "MessagingServiceSid") if extra.get(k)})
    final = {"MessageStatus": "delivered", "SmsStatus": "delivered"}
    if receipt["status"] != "delivered":
        final = {"MessageStatus": "undelivered", "SmsStatus": "undelivered",
                 "ErrorCode": UNDELIVERABLE_CODE}
    return [{**base, "MessageStatus": "sent", "SmsStatus": "sent"}, {**base, **final}]


def callbacks(sim: Sim, receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each message's callbacks, posted to its StatusCallback (else the simulator's
    ``dlr_url``; neither: Twilio posts nothing)."""
    requests: list[dict[str, Any]] = []
    for receipt in receipts:
        url = receipt.get("extra", {}).get("StatusCallback") or sim.config.dlr_url
        if url is None:
            continue
        for form in _forms(sim, receipt):
            headers = {"X-Twilio-Signature": _signature(sim.config.token, url, form)}
            requests.append({"url": url, "headers": headers, "data": form})
    return requests
