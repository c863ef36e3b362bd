"""Sinch's SMS REST API as the simulator speaks it: ``POST /xms/v1/{service_plan_id}/batches``
with a Bearer token (``account`` is the service plan id, ``token`` the API token), one body to
1-1,000 numbers, answered 201 with the batch; ``parameters`` rendered per recipient as Sinch
renders them (each ``${key}`` of the body replaced by the number's value, else the key's
``default``; a recipient with neither fails alone, code 405) and the rendered text ledgered;
errors as Sinch answers them (``{"code", "text"}`` bodies on 400 and 403; a malformed number or
parameter refuses the whole batch); recipient delivery
reports posted one per request, signed with ``signing_key`` the way Sinch signs callbacks
(``x-sinch-webhook-signature``: base64 HMAC-SHA256 over ``body.nonce.timestamp``).
``GET /xms/v1/{service_plan_id}/batches`` lists the batches taken (``page``, ``page_size``),
authenticated as sending is."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providersim.ledger import MAX_BATCH, MessageIn, Sim, respond

__all__ = ["FAILED_CODE", "UNMATCHED_CODE", "BatchIn", "callbacks", "render", "router", "sign"]

FAILED_CODE = 153
"""What a failed message's report carries: SMPP 'absent subscriber' (a Sinch status report
code, temporary), with status ``Failed``."""

UNMATCHED_CODE = 405
"""What a recipient's report carries when the body names a parameter it has no value for (and
the parameter no default): Sinch's 'unmatched parameter', status ``Failed``."""

_MSISDN = re.compile(r"^\+?[1-9]\d{6,14}$")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9._-]{1,16})\}")
ParameterKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$", min_length=1, max_length=16)]
ParameterValue = Annotated[str, Field(max_length=160)]
_LEDGERED = 1600
_REPORTED = ("per_recipient", "per_recipient_final")


class BatchIn(BaseModel):
    """The fields of a text batch the simulator reads (others are ignored, as Sinch's optional
    ones would not change what it does here)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    to: Annotated[list[str], Field(min_length=1, max_length=MAX_BATCH)]
    body: Annotated[str, Field(min_length=1, max_length=1600)]
    sender: Annotated[str | None, Field(alias="from", min_length=1, max_length=16)] = None
    type: Literal["mt_text"] = "mt_text"
    delivery_report: Literal["none", "summary", "full", "per_recipient", "per_recipient_final"] = "none"
    callback_url: Annotated[str | None, Field(max_length=2048, pattern=r"^https?://")] = None
    client_reference: Annotated[str | None, Field(max_length=2048)] = None
    parameters: dict[ParameterKey, dict[str, ParameterValue]] | None = None


def _error(status: int, code: str, text: str) -> JSONResponse:
    return JSONResponse({"code": code, "text": text}, status_code=status)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _read(raw: bytes) -> tuple[BatchIn, list[str | None]] | JSONResponse:
    """The batch and each distinct number's text (:func:`render`), or Sinch's 400 for what is
    wrong with it. A text rendered past 1,600 characters is refused too: Sinch would send it in
    more parts, but the simulator's ledger holds 1,600 a message."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return _error(400, "syntax_invalid_json", f"Invalid JSON: {exc}")
    try:
        batch = BatchIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return _error(400, "syntax_constraint_violation", f"Parameter '{where}': {first['msg']}")
    bad = next((n for n in batch.to if not _MSISDN.match(n)), None)
    if bad is not None:
        return _error(400, "syntax_invalid_parameter_format",
                      f"Invalid format of parameter 'to': {bad!r} is not a valid MSISDN")
    for key, values in (batch.parameters or {}).items():
        bad = next((n for n in values if n != "default" and not _MSISDN.match(n)), None)
        if bad is not None:
            return _error(400, "syntax_invalid_parameter_format",
                          f"Invalid format of parameter 'parameters.{key}': {bad!r} is not a valid MSISDN")
    texts = [render(batch.body, batch.parameters, n) for n in dict.fromkeys(batch.to)]
    if any(len(text) > _LEDGERED for text in texts if text is not None):
        return _error(400, "syntax_constraint_violation",
                      f"Parameter 'body': a rendered text is over {_LEDGERED} characters")
    return batch, texts


def render(body: str, parameters: dict[str, dict[str, str]] | None, number: str) -> str | None:
    """One recipient's text: each ``${key}`` of ``body`` whose key is a parameter replaced by
    the number's value (written with or without ``+``), else the key's ``default``; None when
    it has neither (Sinch fails that recipient alone). Keys that are no parameter stay as
    written, and values are not read again for placeholders."""
    if not parameters:
        return body
    digits = number.lstrip("+")
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        values = parameters.get(match[1])
        if values is None:
            return match[0]
        found = values.get(f"+{digits}", values.get(digits, values.get("default")))
        missing = missing or found is None
        return found or ""

    text = _PLACEHOLDER.sub(value, body)
    return None if missing else text


def _accepted(sim: Sim, batch: BatchIn, texts: list[str | None]) -> dict[str, Any]:
    """Ledger the batch's numbers (once each) under ``{batch_id}:{+number}`` with their texts
    (an unmatched one as its body came, failing with :data:`UNMATCHED_CODE`); the batch as
    Sinch answers it."""
    batch_id = "01" + uuid.uuid4().hex[:24].upper()
    numbers = list(dict.fromkeys(batch.to))
    pmids = [f"{batch_id}:+{n.lstrip('+')}" for n in numbers]
    ids = iter(pmids)
    extra: dict[str, Any] = {"batch_id": batch_id, "delivery_report": batch.delivery_report,
                             "callback_url": batch.callback_url,
                             "client_reference": batch.client_reference}
    if batch.parameters:
        extra |= {"template": batch.body, "parameters": batch.parameters}
    sim.accept(
        [MessageIn(client_ref=pmid, to=f"+{n.lstrip('+')}", body=batch.body if text is None else text)
         for pmid, n, text in zip(pmids, numbers, texts, strict=True)],
        extras=[{**extra, "recipient": n, **({"unmatched": True} if text is None else {})}
                for n, text in zip(numbers, texts, strict=True)],
        new_id=lambda: next(ids))
    now = _now()
    expire = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    answer: dict[str, Any] = {
        "id": batch_id, "to": batch.to, "body": batch.body, "type": "mt_text", "canceled": False,
        "created_at": now, "modified_at": now, "send_at": now, "expire_at": expire,
        "delivery_report": batch.delivery_report, "flash_message": False,
    }
    optional = {"from": batch.sender, "callback_url": batch.callback_url,
                "client_reference": batch.client_reference, "parameters": batch.parameters}
    return {**answer, **{k: v for k, v in optional.items() if v is not None}}


def _gate(sim: Sim, n: int) -> Response | None:
    """The simulator's faults and rate limit in Sinch's words: 429 Too Many Requests and 503
    Service Unavailable, neither with a documented body (nor a Retry-After)."""
    denied = sim.gate(n)
    if denied is None:
        return None
    reason = "Too Many Requests" if denied.status_code == 429 else "Service Unavailable"
    return Response(reason, status_code=denied.status_code, media_type="text/plain")


def router(sim: Sim) -> APIRouter:
    api = APIRouter(prefix="/xms/v1")

    async def post_batch(service_plan_id: str, request: Request) -> Response:
        if not _authorized(sim, service_plan_id, request.headers.get("authorization", "")):
            return await respond(sim, _unauthorized())
        read = _read(await request.body())
        if isinstance(read, JSONResponse):
            return await respond(sim, read)
        batch, texts = read
        if batch.delivery_report in _REPORTED and not (batch.callback_url or sim.config.dlr_url):
            return await respond(sim, _error(403, "missing_callback_url",
                                             "Callback has been requested but no URL is provided"))
        denied = _gate(sim, len(batch.to))
        if denied is not None:
            return await respond(sim, denied)
        answer = _accepted(sim, batch, texts)
        return await respond(sim, sim.garbled_answer() or JSONResponse(answer, status_code=201))

    async def list_batches(service_plan_id: str, request: Request,
                           page: Annotated[int, Query(ge=0)] = 0,
                           page_size: Annotated[int, Query(ge=1, le=100)] = 30) -> Response:
        if not _authorized(sim, service_plan_id, request.headers.get("authorization", "")):
            return await respond(sim, _unauthorized())
        found = _batches(sim)
        batches = found[page * page_size:(page + 1) * page_size]
        return await respond(sim, JSONResponse({"count": len(found), "page": page,
                                                "page_size": len(batches), "batches": batches}))

    api.add_api_route("/{service_plan_id}/batches", post_batch, methods=["POST"])
    api.add_api_route("/{service_plan_id}/batches", list_batches, methods=["GET"])
    return api


def _unauthorized() -> Response:
    """Sinch's 401: plain text, no error body."""
    return Response("Unauthorized", status_code=401, media_type="text/plain")


def _authorized(sim: Sim, service_plan_id: str, header: str) -> bool:
    """The service plan id in the path and the API token as Bearer, both the account's."""
    return (hmac.compare_digest(service_plan_id.encode(), sim.config.account.encode())
            and hmac.compare_digest(header.encode(), f"Bearer {sim.config.token}".encode()))


def _batches(sim: Sim) -> list[dict[str, Any]]:
    """The ledgered batches as Sinch lists them, newest first (the simulator keeps every batch
    it took since its last reset: it lives far less than the list's default 24 h window)."""
    found: dict[str, dict[str, Any]] = {}
    for record in sim.records:
        extra = record.extra
        if "batch_id" not in extra:
            continue
        optional = {k: extra[k] for k in ("callback_url", "client_reference", "parameters")
                    if extra.get(k)}
        batch = found.setdefault(extra["batch_id"], {
            "id": extra["batch_id"], "to": [], "body": extra.get("template", record.body), "type": "mt_text",
            "canceled": False, "created_at": record.accepted_at, "modified_at": record.accepted_at,
            "delivery_report": extra["delivery_report"], "flash_message": False, **optional})
        batch["to"].append(extra["recipient"])
    return list(reversed(found.values()))


def sign(secret: str, body: bytes, *, nonce: str, timestamp: str) -> str:
    """Sinch's callback signature: base64 HMAC-SHA256 over ``body.nonce.timestamp``."""
    signed = b".".join((body, nonce.encode(), timestamp.encode()))
    return base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()


def _report(receipt: dict[str, Any], status: str, code: int) -> dict[str, Any]:
    extra = receipt["extra"]
    report = {"type": "recipient_delivery_report_sms", "batch_id": extra["batch_id"],
              "recipient": extra["recipient"], "code": code, "status": status,
              "at": receipt["at"], "operator_status_at": receipt["at"]}
    if extra.get("client_reference"):
        report["client_reference"] = extra["client_reference"]
    return report


def _signed(sim: Sim, report: dict[str, Any], url: str | None) -> dict[str, Any]:
    body = json.dumps(report).encode()
    nonce, stamp = secrets.token_hex(16), str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "x-sinch-webhook-signature": sign(sim.config.signing_key, body, nonce=nonce, timestamp=stamp),
        "x-sinch-webhook-signature-nonce": nonce,
        "x-sinch-webhook-signature-timestamp": stamp,
        "x-sinch-webhook-signature-algorithm": "HmacSHA256",
    }
    return {"headers": headers, "content": body, "url": url}


def callbacks(sim: Sim, receipts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One signed recipient delivery report per message whose batch asked for them, to the
    batch's ``callback_url`` or else the service plan's (``dlr_url``); ``per_recipient`` also
    reports ``Dispatched`` first, ``per_recipient_final`` only the final state."""
    requests: list[dict[str, Any]] = []
    for receipt in receipts:
        extra = receipt.get("extra") or {}
        if extra.get("delivery_report") not in _REPORTED:
            continue
        url = extra.get("callback_url")
        if extra["delivery_report"] == "per_recipient":
            requests.append(_signed(sim, _report(receipt, "Dispatched", 401), url))
        final = (("Failed", UNMATCHED_CODE) if extra.get("unmatched")
                 else ("Delivered", 0) if receipt["status"] == "delivered" else ("Failed", FAILED_CODE))
        requests.append(_signed(sim, _report(receipt, *final), url))
    return requests
