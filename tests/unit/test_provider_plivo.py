"""The Plivo adapter without I/O: its status table row by row, V3 signatures (checked against
the official SDK's validator), callback parsing, and how a chunk becomes requests and a 202
answer becomes results."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from plivo.utils import validate_v3_signature

from hexcast.core.errors import ConfigError, ProviderError, ProviderRateLimited, ProviderUnavailable
from providersim.dialects.plivo import sign_v3
from sender.models import ProviderSpec
from sender.providers.base import Outgoing
from sender.providers.plivo import (
    TABLE,
    PlivoCallbacks,
    PlivoProvider,
    read_answer,
    requests_for,
    signature_v3,
)
from sender.providers.status import DeliveryStatus, ErrorClass

TOKEN = "plivo-auth-token"
URL = "https://hooks.example.com/plivo/status?route=p1"
SPEC = ProviderSpec(name="p1", kind="plivo", token=TOKEN, account="MA0123456789ABCDEFGH",
                    sender_id="14155550000")

# From Plivo's docs: message status callbacks (Status values) and SMS error codes
# (https://www.plivo.com/docs/messaging/troubleshooting/error-codes).
STATUSES = {
    "queued": DeliveryStatus.ACCEPTED, "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED, "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.FAILED, "failed": DeliveryStatus.FAILED,
    "rejected": DeliveryStatus.FAILED,
}
ERRORS = {
    "10": ErrorClass.PERMANENT, "20": ErrorClass.UNDELIVERED, "30": ErrorClass.FILTERED,
    "40": ErrorClass.PERMANENT, "50": ErrorClass.PERMANENT, "60": ErrorClass.UNDELIVERED,
    "70": ErrorClass.PERMANENT, "80": ErrorClass.UNDELIVERED, "90": ErrorClass.UNDELIVERED,
    "100": ErrorClass.PERMANENT, "110": ErrorClass.PERMANENT, "200": ErrorClass.OPTED_OUT,
    "201": ErrorClass.PERMANENT, "900": ErrorClass.RETRY_LATER, "1000": ErrorClass.UNDELIVERED,
}


def test_every_table_row_is_tested() -> None:
    assert dict(TABLE.statuses) == STATUSES
    assert dict(TABLE.errors) == ERRORS


@pytest.mark.parametrize(("word", "status"), list(STATUSES.items()))
def test_status_row(word: str, status: DeliveryStatus) -> None:
    assert TABLE.status(word) is status
    assert TABLE.status(word.upper()) is status


@pytest.mark.parametrize(("code", "error_class"), list(ERRORS.items()))
def test_error_row(code: str, error_class: ErrorClass) -> None:
    assert TABLE.error(code) is error_class


def test_unlisted_words_and_codes() -> None:
    assert TABLE.status("received") is DeliveryStatus.UNKNOWN
    assert TABLE.error("4242") is ErrorClass.UNDELIVERED
    assert TABLE.error(None) is None


def signed(form: dict[str, str], *, url: str = URL, token: str = TOKEN,
           nonce: str = "05429567804466091622") -> tuple[dict[str, str], bytes]:
    """Headers (lower-case, as the webhook hands them over) and body of a signed callback."""
    signature = sign_v3(token, url, nonce, form)
    headers = {"x-plivo-signature-v3": signature, "x-plivo-signature-v3-nonce": nonce,
               "content-type": "application/x-www-form-urlencoded"}
    return headers, urlencode(form).encode()


FORM = {"MessageUUID": "6da4afba-2bcf-4a87-9eff-d2f88577b0f1", "Status": "undelivered",
        "ErrorCode": "200", "To": "14155550100", "From": "14155550000", "Units": "2",
        "Sequence": "3", "TotalRate": "0.00500"}


def test_the_simulators_signature_is_plivos() -> None:
    headers, _ = signed(FORM)
    assert validate_v3_signature("POST", URL, headers["x-plivo-signature-v3-nonce"], TOKEN,
                                 headers["x-plivo-signature-v3"], dict(FORM))
    params = {k: [v] for k, v in FORM.items()}
    assert signature_v3(TOKEN, url=URL, nonce="05429567804466091622", params=params) == \
        headers["x-plivo-signature-v3"]


def test_a_signed_callback_verifies() -> None:
    headers, body = signed(FORM)
    assert PlivoCallbacks(SPEC).verify(url=URL, headers=headers, body=body)


def test_one_good_signature_of_a_list_verifies() -> None:
    headers, body = signed(FORM)
    headers["x-plivo-signature-v3"] = f"bm90IGl0, {headers['x-plivo-signature-v3']}"
    assert PlivoCallbacks(SPEC).verify(url=URL, headers=headers, body=body)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda h, b: (h, b.replace(b"undelivered", b"delivered")), id="tampered-body"),
        pytest.param(lambda h, b: (h, b + b"&Extra=1"), id="added-field"),
        pytest.param(lambda h, b: ({**h, "x-plivo-signature-v3-nonce": "1"}, b), id="other-nonce"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if "nonce" not in k}, b),
                     id="no-nonce"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if not k.endswith("v3")}, b),
                     id="no-signature"),
        pytest.param(lambda h, b: (signed(FORM, token="guessed")[0], b), id="wrong-token"),
        pytest.param(lambda h, b: (h, b"\xff\xfe"), id="not-a-form"),
    ],
)
def test_a_forged_callback_is_refused(forge: Any) -> None:
    headers, body = forge(*signed(FORM))
    assert not PlivoCallbacks(SPEC).verify(url=URL, headers=headers, body=body)


@pytest.mark.parametrize("url", ["https://hooks.example.com/plivo/status",
                                 "https://hooks.example.com/plivo/status?route=p2",
                                 "http://hooks.example.com/plivo/status?route=p1",
                                 "https://evil.example.com/plivo/status?route=p1"])
def test_a_callback_for_another_url_is_refused(url: str) -> None:
    headers, body = signed(FORM)
    assert not PlivoCallbacks(SPEC).verify(url=url, headers=headers, body=body)


def test_receipt_of_a_failed_message() -> None:
    _, body = signed(FORM)
    [receipt] = PlivoCallbacks(SPEC).receipts(headers={}, body=body)
    assert receipt.provider_message_id == FORM["MessageUUID"]
    assert receipt.status is DeliveryStatus.FAILED
    assert receipt.code == "200"
    assert TABLE.error(receipt.code) is ErrorClass.OPTED_OUT
    assert (receipt.part, receipt.parts, receipt.client_ref) == (1, 1, None)


@pytest.mark.parametrize(("status", "code", "expected"), [
    ("delivered", None, DeliveryStatus.DELIVERED), ("delivered", "000", DeliveryStatus.DELIVERED),
    ("queued", "", DeliveryStatus.ACCEPTED), ("sent", None, DeliveryStatus.SENT),
])
def test_receipt_without_an_error(status: str, code: str | None, expected: DeliveryStatus) -> None:
    form = {"MessageUUID": "138ee55f-9efb-4fc3-8ad7-4d71219bf56c", "Status": status}
    if code is not None:
        form["ErrorCode"] = code
    [receipt] = PlivoCallbacks(SPEC).receipts(headers={}, body=urlencode(form).encode())
    assert (receipt.status, receipt.code) == (expected, None)


@pytest.mark.parametrize("body", [b"", b"Status=delivered", b"MessageUUID=abc", b"\xff",
                                  b"MessageUUID=a%20b&Status=delivered", b"garbage"])
def test_a_malformed_callback_raises(body: bytes) -> None:
    with pytest.raises(ValueError, match=r".+"):
        PlivoCallbacks(SPEC).receipts(headers={}, body=body)


def out(ref: str, to: str, body: str = "hello") -> Outgoing:
    return Outgoing(client_ref=ref, to=to, body=body)


def test_one_request_per_text_and_per_repeated_number() -> None:
    chunk = [out("a", "+14155550100"), out("b", "+14155550101", "other"),
             out("c", "+14155550101"), out("d", "+1 (415) 555-0100"), out("e", "+14155550102")]
    assert [[m.client_ref for m in r] for r in requests_for(chunk)] == [
        ["a", "c", "e"], ["b"], ["d"]]


def test_a_request_holds_at_most_1000_numbers() -> None:
    chunk = [out(str(i), f"+1415{i:07d}") for i in range(2500)]
    assert [len(r) for r in requests_for(chunk)] == [1000, 1000, 500]


def test_uuids_map_in_dst_order_without_the_invalid_numbers() -> None:
    batch = [out("a", "+14155550100"), out("b", "+123"), out("c", "+14155550102")]
    answer = {"api_id": "x", "message": "message(s) queued", "invalid_number": ["123"],
              "message_uuid": ["u-1", "u-2"]}
    results = read_answer(batch, answer)
    assert [(r.client_ref, r.accepted, r.provider_message_id) for r in results] == [
        ("a", True, "u-1"), ("b", False, None), ("c", True, "u-2")]
    assert results[1].error is not None
    assert results[1].error.startswith("50: ")
    assert TABLE.error(results[1].error.split(":")[0]) is ErrorClass.PERMANENT


@pytest.mark.parametrize("answer", [
    {"message_uuid": ["u-1"]},  # one uuid short: which message got it?
    {"message_uuid": ["u-1", "u-2", "u-3"]},
    {"message_uuid": "u-1"},
    {"message_uuid": ["u-1", None]},
    {"message": "message(s) queued"},
    ["u-1", "u-2"],
])
def test_an_answer_that_cannot_be_mapped_is_unreadable(answer: Any) -> None:
    batch = [out("a", "+14155550100"), out("b", "+14155550101")]
    with pytest.raises((ValueError, KeyError, TypeError, AttributeError)):
        read_answer(batch, answer)


def provider_answering(answers: dict[str, httpx.Response | Exception],
                       concurrency: int = 2) -> tuple[PlivoProvider, list[dict[str, Any]]]:
    """An adapter whose HTTP client answers by the request's text (in memory: no network)."""
    seen: list[dict[str, Any]] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        seen.append({"path": request.url.path, **payload})
        await asyncio.sleep(0.01)  # requests in flight together overlap
        answer = answers[payload["text"]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    adapter = PlivoProvider(SPEC, timeout_s=1.0, concurrency=concurrency)
    adapter._http.client = httpx.AsyncClient(base_url="https://api.plivo.test",
                                             transport=httpx.MockTransport(handle))
    return adapter, seen


def queued(*uuids: str) -> httpx.Response:
    return httpx.Response(202, json={"api_id": "a", "message": "message(s) queued",
                                     "message_uuid": list(uuids)})


async def test_a_request_per_text_in_plivos_shape() -> None:
    adapter, seen = provider_answering({"one": queued("u-1", "u-2"), "two": queued("u-3")})
    chunk = [out("a", "+14155550100", "one"), out("b", "+14155550101", "two"),
             out("c", "+14155550102", "one")]
    report = await adapter.send(chunk)
    await adapter.aclose()
    assert report.failure is None
    assert sorted((r.client_ref, r.provider_message_id) for r in report.results) == [
        ("a", "u-1"), ("b", "u-3"), ("c", "u-2")]
    assert sorted(seen, key=lambda s: s["text"]) == [
        {"path": "/v1/Account/MA0123456789ABCDEFGH/Message/", "src": "14155550000",
         "dst": "14155550100<14155550102", "text": "one", "type": "sms"},
        {"path": "/v1/Account/MA0123456789ABCDEFGH/Message/", "src": "14155550000",
         "dst": "14155550101", "text": "two", "type": "sms"},
    ]


async def test_throttled_request_leaves_its_messages_rate_limited() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "7"}, json={"error": "too many"})
    adapter, _ = provider_answering({"one": queued("u-1"), "two": limited})
    report = await adapter.send([out("a", "+14155550100", "one"), out("b", "+14155550101", "two")])
    await adapter.aclose()
    assert [r.client_ref for r in report.results] == ["a"]
    assert isinstance(report.failure, ProviderRateLimited)
    assert report.failure.retry_after == 7


async def test_a_request_that_may_have_gone_outweighs_a_throttled_one() -> None:
    limited = httpx.Response(429, json={"error": "too many"})
    adapter, _ = provider_answering({"one": limited, "two": httpx.ReadTimeout("slow")})
    report = await adapter.send([out("a", "+14155550100", "one"), out("b", "+14155550101", "two")])
    await adapter.aclose()
    assert report.results == []
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous


async def test_after_a_failure_no_new_request_starts() -> None:
    refused = httpx.Response(401, json={"api_id": "a", "error": "authentication failed"})
    adapter, seen = provider_answering({"one": refused, "two": queued("u-1")}, concurrency=1)
    report = await adapter.send([out("a", "+14155550100", "one"), out("b", "+14155550101", "two")])
    await adapter.aclose()
    assert [s["text"] for s in seen] == ["one"]
    assert report.results == []
    assert type(report.failure) is ProviderError
    assert not report.failure.retryable


@pytest.mark.parametrize(("error", "rejected"), [
    ("14155550100 is not a valid phone number", True),
    ("src parameter is invalid", False),
])
async def test_a_400_rejects_the_numbers_it_names_else_the_call(error: str, rejected: bool) -> None:
    adapter, _ = provider_answering({"one": httpx.Response(400, json={"error": error})})
    report = await adapter.send([out("a", "+14155550100", "one")])
    await adapter.aclose()
    if rejected:
        assert report.failure is None
        assert [(r.accepted, r.error) for r in report.results] == [(False, f"400: {error}")]
    else:
        assert report.results == []
        assert report.failure is not None
        assert not report.failure.retryable


def test_a_route_without_its_auth_id_or_sender_does_not_start() -> None:
    with pytest.raises(ConfigError, match="account"):
        PlivoProvider(SPEC.model_copy(update={"account": None}), timeout_s=1, concurrency=1)
    with pytest.raises(ConfigError, match="sender_id"):
        PlivoProvider(SPEC.model_copy(update={"sender_id": None}), timeout_s=1, concurrency=1)
