"""The Vonage adapter without I/O: its status table row by row, the DLR signature (checked
against the official SDK's signer), DLR parsing, and how a message becomes a form and an
answer becomes a result (an in-process transport stands in for the API)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from vonage_http_client import Auth

from hexcast.core.errors import ConfigError, ProviderError, ProviderRateLimited, ProviderUnavailable
from providersim.dialects.vonage import sign
from sender.models import ProviderSpec
from sender.providers.base import Outgoing
from sender.providers.status import DeliveryStatus, ErrorClass
from sender.providers.vonage import TABLE, VonageCallbacks, VonageProvider, signature

KEY, SECRET, SIG_SECRET = "abcd1234", "api-secret-0123", "vonage-signature-secret"
NOW = 1_760_000_000
SPEC = ProviderSpec(name="v1", kind="vonage", token=SECRET, account=KEY, sender_id="Hexcast",
                    webhook_key=SIG_SECRET)
URL = "https://hooks.example.com/v1/webhooks/providers/v1"
JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}

S, E = DeliveryStatus, ErrorClass
ROWS: list[tuple[str, str, DeliveryStatus | ErrorClass]] = [
    # the DLR statuses (SMS API reference, delivery-receipt callback)
    ("status", "accepted", S.ACCEPTED), ("status", "buffered", S.SENT),
    ("status", "delivered", S.DELIVERED), ("status", "expired", S.EXPIRED),
    ("status", "failed", S.FAILED), ("status", "rejected", S.FAILED),
    ("status", "unknown", S.UNKNOWN),
    # the DLR err-codes ("SMS Delivery Error Codes", Vonage API support)
    ("error", "1", E.UNDELIVERED),  # unknown
    ("error", "2", E.UNDELIVERED),  # absent subscriber, temporary
    ("error", "3", E.PERMANENT),  # absent subscriber, permanent
    ("error", "4", E.PERMANENT),  # call barred by user
    ("error", "5", E.UNDELIVERED),  # portability error
    ("error", "6", E.FILTERED),  # anti-spam rejection
    ("error", "7", E.UNDELIVERED),  # handset busy
    ("error", "8", E.UNDELIVERED),  # network error
    ("error", "9", E.OPTED_OUT),  # illegal number: the user asked not to get the service's SMS
    ("error", "10", E.PERMANENT),  # illegal message
    ("error", "11", E.UNDELIVERED),  # unroutable
    ("error", "12", E.PERMANENT),  # destination unreachable
    ("error", "13", E.PERMANENT),  # subscriber age restriction
    ("error", "14", E.PERMANENT),  # number blocked by carrier
    # the send answer's statuses ("SMS API error codes"), as submit-<status>
    ("error", "submit-1", E.RETRY_LATER),  # throttled
    ("error", "submit-10", E.RETRY_LATER),  # too many existing binds
    ("error", "submit-5", E.RETRY_LATER),  # internal error
    ("error", "submit-9", E.RETRY_LATER),  # partner quota violation
    ("error", "submit-2", E.PERMANENT),  # missing parameters
    ("error", "submit-3", E.PERMANENT),  # invalid parameters (an invalid number)
    ("error", "submit-6", E.PERMANENT),  # invalid message (unknown number prefix)
    ("error", "submit-7", E.PERMANENT),  # number barred
    ("error", "submit-12", E.PERMANENT),  # message too long
    ("error", "submit-22", E.PERMANENT),  # invalid network code
    ("error", "submit-29", E.PERMANENT),  # non-whitelisted destination
    ("error", "submit-33", E.PERMANENT),  # number de-activated
]


def test_the_table_holds_exactly_the_documented_rows_and_defaults_the_rest() -> None:
    assert TABLE.kind == "vonage"
    assert dict(TABLE.statuses) == {key: v for column, key, v in ROWS if column == "status"}
    assert dict(TABLE.errors) == {key: v for column, key, v in ROWS if column == "error"}
    assert TABLE.status("deleted") is DeliveryStatus.UNKNOWN
    assert TABLE.error("99") is ErrorClass.UNDELIVERED
    assert TABLE.error(None) is None


@pytest.mark.parametrize(("column", "key", "meaning"), ROWS, ids=[f"{c}-{k}" for c, k, _ in ROWS])
def test_each_row(column: str, key: str, meaning: DeliveryStatus | ErrorClass) -> None:
    if column == "status":
        assert TABLE.status(key) is meaning
        assert TABLE.status(key.upper()) is meaning
    else:
        assert TABLE.error(key) is meaning


def dlr(**changes: str) -> dict[str, str]:
    params = {
        "msisdn": "15550002222", "to": "Hexcast", "network-code": "310260",
        "messageId": "0B00000127FDBC63", "price": "0.00570000", "status": "delivered",
        "scts": "2510091200", "err-code": "0", "api-key": KEY, "client-ref": "otp-ref-1",
        "message-timestamp": "2025-10-09 12:00:00", "timestamp": str(NOW),
        "nonce": "ec11dd3e-1e7f-4db5-9467-82b02cd223b9",
    }
    return {**params, **changes}


def sdk_signed(params: dict[str, str], secret: str = SIG_SECRET) -> dict[str, str]:
    """``params`` signed by the official SDK (HMAC-SHA256), as Vonage signs a webhook."""
    signer = Auth(api_key=KEY, signature_secret=secret, signature_method="sha256")
    return {**params, "sig": signer.sign_params(dict(params)).upper()}


def callbacks(now: float = NOW, **changes: Any) -> VonageCallbacks:
    return VonageCallbacks(SPEC.model_copy(update=changes), clock=lambda: now)


def test_our_signature_is_the_sdks_and_the_simulators() -> None:
    params = dlr()
    ours = signature(params, SIG_SECRET)
    assert sdk_signed(params)["sig"].lower() == ours
    assert sign(params, SIG_SECRET) == ours.upper()
    assert Auth(api_key=KEY, signature_secret=SIG_SECRET, signature_method="sha256").check_signature(
        {**params, "sig": ours})


def test_a_value_with_ampersand_or_equals_is_signed_as_vonage_does() -> None:
    params = dlr(**{"client-ref": "a&b=c"})
    assert signature(params, SIG_SECRET) == signature(dlr(**{"client-ref": "a_b_c"}), SIG_SECRET)
    assert callbacks().verify(url=URL, headers=JSON, body=json.dumps(sdk_signed(params)).encode())


@pytest.mark.parametrize("headers", [JSON, FORM])
def test_a_signed_dlr_verifies_as_json_or_form(headers: dict[str, str]) -> None:
    signed = sdk_signed(dlr())
    body = json.dumps(signed).encode() if headers is JSON else urlencode(signed).encode()
    assert callbacks().verify(url=URL, headers=headers, body=body)
    assert callbacks(now=NOW + 299).verify(url=URL, headers=headers, body=body)


def test_forged_tampered_and_replayed_dlrs_are_refused() -> None:
    checker = callbacks()
    forged = json.dumps(sdk_signed(dlr(), secret="not-the-secret")).encode()
    assert not checker.verify(url=URL, headers=JSON, body=forged)
    tampered = {**sdk_signed(dlr(status="failed")), "status": "delivered"}
    assert not checker.verify(url=URL, headers=JSON, body=json.dumps(tampered).encode())
    unsigned = json.dumps(dlr()).encode()
    assert not checker.verify(url=URL, headers=JSON, body=unsigned)
    old = json.dumps(sdk_signed(dlr(timestamp=str(NOW - 301)))).encode()
    assert not checker.verify(url=URL, headers=JSON, body=old)
    ahead = json.dumps(sdk_signed(dlr(timestamp=str(NOW + 301)))).encode()
    assert not checker.verify(url=URL, headers=JSON, body=ahead)
    no_time = {k: v for k, v in dlr().items() if k != "timestamp"}
    assert not checker.verify(url=URL, headers=JSON, body=json.dumps(sdk_signed(no_time)).encode())


def test_the_signature_does_not_cover_the_url_and_needs_the_secret() -> None:
    body = json.dumps(sdk_signed(dlr())).encode()
    # Vonage signs the parameters only: the URL a DLR was posted to plays no part.
    assert callbacks().verify(url="https://elsewhere.example.com/x", headers=JSON, body=body)
    # Without a configured signature secret nothing verifies.
    assert not callbacks(webhook_key=None).verify(url=URL, headers=JSON, body=body)
    for junk in (b"[1, 2]", b"{not json", b"\xff\xfe"):
        assert not callbacks().verify(url=URL, headers=JSON, body=junk)


def test_a_dlr_becomes_one_receipt_naming_its_part_and_our_ref() -> None:
    body = json.dumps(sdk_signed(dlr(status="failed", **{"err-code": "6"}))).encode()
    [receipt] = callbacks().receipts(headers=JSON, body=body)
    assert receipt.provider_message_id == "0B00000127FDBC63"
    assert receipt.client_ref == "otp-ref-1"
    assert receipt.status is DeliveryStatus.FAILED
    assert receipt.code == "6"
    assert TABLE.error(receipt.code) is ErrorClass.FILTERED
    # A Vonage DLR does not say which part it is: its part's own id places it.
    assert receipt.by_part_id
    form = urlencode(dlr(status="buffered", **{"client-ref": ""})).encode()
    [interim] = callbacks().receipts(headers=FORM, body=form)
    assert (interim.status, interim.client_ref) == (DeliveryStatus.SENT, None)


@pytest.mark.parametrize(
    ("headers", "body"),
    [(JSON, b"[]"), (JSON, b"{oops"), (JSON, json.dumps({"status": "delivered"}).encode()),
     (FORM, b"status=delivered"), (FORM, b"messageId=1&messageId=2&status=delivered")],
)
def test_a_malformed_dlr_is_a_value_error(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the protocol's one error
        callbacks().receipts(headers=headers, body=body)


class FakeApi:
    """Vonage's /sms/json in process: records each form, answers what a test queued."""

    def __init__(self, *answers: tuple[int, Any]) -> None:
        self.answers = list(answers)
        self.forms: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path) == ("POST", "/sms/json")
        self.forms.append(dict(parse_qsl(request.content.decode())))
        status, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(body, bytes):
            return httpx.Response(status, content=body)
        return httpx.Response(status, json=body)


def provider(api: FakeApi, **changes: Any) -> VonageProvider:
    adapter = VonageProvider(SPEC.model_copy(update=changes), timeout_s=5.0, concurrency=1)
    adapter._http.client = httpx.AsyncClient(base_url=SPEC.url, transport=httpx.MockTransport(api))
    return adapter


def answer(*parts: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return 200, {"message-count": str(len(parts)), "messages": list(parts)}


def ok(message_id: str) -> dict[str, str]:
    return {"to": "15550002222", "message-id": message_id, "status": "0", "network": "310260"}


def err(status: str, text: str) -> dict[str, str]:
    return {"status": status, "error-text": text}


async def test_the_form_and_a_multipart_answer() -> None:
    api = FakeApi(answer(ok("0C0000000000AA00"), ok("0C0000000000AA01")))
    adapter = provider(api, callback_url="https://hooks.example.com/vonage")
    report = await adapter.send([Outgoing("ref-1", "+15550002222", "Привет " * 40)])
    await adapter.aclose()
    assert report.failure is None
    [result] = report.results
    assert (result.client_ref, result.accepted, result.provider_message_id) == (
        "ref-1", True, "0C0000000000AA00")
    assert result.part_ids == ("0C0000000000AA00", "0C0000000000AA01")  # to place each DLR
    assert api.forms == [{
        "api_key": KEY, "api_secret": SECRET, "from": "Hexcast", "to": "15550002222",
        "text": "Привет " * 40, "client-ref": "ref-1", "status-report-req": "1", "type": "unicode",
        "callback": "https://hooks.example.com/vonage"}]


async def test_an_invalid_number_rejects_that_message_only() -> None:
    api = FakeApi(answer(ok("0C00000000000100")), answer(err("3", "Invalid to param")),
                  answer(ok("0C00000000000300")))
    adapter = provider(api)
    msgs = [Outgoing(f"r{i}", "+15550002222", "hi") for i in range(3)]
    report = await adapter.send(msgs)
    await adapter.aclose()
    assert report.failure is None
    by_ref = {r.client_ref: r for r in report.results}
    assert by_ref["r1"].accepted is False
    assert by_ref["r1"].error == "submit-3: Invalid to param"
    assert [by_ref[r].accepted for r in ("r0", "r2")] == [True, True]
    assert not {"type", "callback"} & api.forms[0].keys()


async def test_a_part_refused_after_others_went_out_rejects_the_message() -> None:
    adapter = provider(FakeApi(answer(ok("0C00000000000500"), err("7", "Number barred"))))
    [result] = (await adapter.send([Outgoing("r", "+15550002222", "x" * 200)])).results
    await adapter.aclose()
    assert (result.accepted, result.provider_message_id) == (False, "0C00000000000500")
    assert result.error == "submit-7: Number barred (part 2 of 2; 1 parts sent)"


@pytest.mark.parametrize(
    ("reply", "kind", "retry_after"),
    [
        (answer(err("1", "Throughput Rate Exceeded - please wait [ 2500 ] and retry")),
         ProviderRateLimited, 2.5),
        (answer(err("1", "Throughput Rate Exceeded - please wait [ 250 ] and retry")),
         ProviderRateLimited, 1.0),
        (answer(err("10", "Too many existing binds")), ProviderRateLimited, 1.0),
        ((429, {"title": "Too Many Requests"}), ProviderRateLimited, 1.0),
        (answer(err("9", "Partner quota exceeded")), ProviderUnavailable, None),
        (answer(err("5", "Internal error")), ProviderUnavailable, None),
        ((503, {"error": "down"}), ProviderUnavailable, None),
    ],
)
async def test_answers_that_stop_the_call_and_can_be_retried(
    reply: tuple[int, Any], kind: type[ProviderError], retry_after: float | None,
) -> None:
    api = FakeApi(reply)
    adapter = provider(api)
    report = await adapter.send([Outgoing(f"r{i}", "+15550002222", "hi") for i in range(4)])
    await adapter.aclose()
    assert report.results == []
    assert type(report.failure) is kind
    assert report.failure.retryable is True
    assert getattr(report.failure, "ambiguous", False) is False
    assert getattr(report.failure, "retry_after", None) == retry_after
    assert len(api.forms) == 1  # no request starts after the first failure


@pytest.mark.parametrize(
    "reply",
    [answer(err("4", "Bad Credentials")), answer(err("14", "Invalid Signature")),
     answer(err("15", "Illegal Sender Address - rejected")), answer(err("8", "Account barred")),
     (401, {"title": "Unauthorized"}), (403, {"title": "Forbidden"}), (400, {"title": "Bad"})],
)
async def test_account_errors_refuse_the_call_for_good(reply: tuple[int, Any]) -> None:
    adapter = provider(FakeApi(reply))
    report = await adapter.send([Outgoing("r", "+15550002222", "hi")])
    await adapter.aclose()
    assert report.results == []
    assert type(report.failure) is ProviderError
    assert report.failure.retryable is False


@pytest.mark.parametrize("body", [b'{"message-count": "1", "messages": [', b'{"messages": []}', b"[]"])
async def test_an_unreadable_success_is_ambiguous(body: bytes) -> None:
    adapter = provider(FakeApi((200, body)))
    report = await adapter.send([Outgoing("r", "+15550002222", "hi")])
    await adapter.aclose()
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous is True


async def test_a_client_ref_longer_than_vonage_takes_is_rejected_unsent() -> None:
    api = FakeApi(answer(ok("0C00000000000900")))
    adapter = provider(api)
    [result] = (await adapter.send([Outgoing("k" * 101, "+15550002222", "hi")])).results
    await adapter.aclose()
    assert result.accepted is False
    assert str(result.error).startswith("client-ref:")
    assert api.forms == []


async def test_the_route_needs_its_api_key_and_sender() -> None:
    with pytest.raises(ConfigError, match="sender_id"):
        VonageProvider(SPEC.model_copy(update={"sender_id": None}), timeout_s=1.0, concurrency=1)
    with pytest.raises(ConfigError, match="account"):
        VonageProvider(SPEC.model_copy(update={"account": None}), timeout_s=1.0, concurrency=1)
    adapter = VonageProvider(SPEC, timeout_s=1.0, concurrency=4)
    assert (adapter.name, adapter.max_batch, adapter.supports_lookup) == ("v1", 1000, False)
    with pytest.raises(ProviderError, match="no lookup"):
        await adapter.lookup("r")
    await adapter.aclose()
