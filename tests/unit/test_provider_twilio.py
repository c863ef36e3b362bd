"""The Twilio adapter without a network: its status table against Twilio's documented words and
codes, its callback signatures against the official SDK's validator, receipt parsing, and how
it reads each kind of answer (httpx's MockTransport plays Twilio)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from sender.models import ProviderSpec
from sender.providers import DeliveryStatus, ErrorClass, Outgoing, SendReport, callbacks_for
from sender.providers.twilio import TABLE, TwilioCallbacks, TwilioProvider, status_callback_url

TOKEN = "twilio-auth-token"
ACCOUNT = "AC" + "1" * 32
URL = "https://hooks.example.com/v1/webhooks/twilio?ref=k-1"

# From Twilio's docs (Message resource status values; the error dictionary), written out
# independently of TABLE so a changed row fails here.
STATUSES = {
    "accepted": DeliveryStatus.ACCEPTED, "scheduled": DeliveryStatus.ACCEPTED,
    "queued": DeliveryStatus.ACCEPTED, "sending": DeliveryStatus.SENT, "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED, "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.FAILED, "failed": DeliveryStatus.FAILED,
    "partially_delivered": DeliveryStatus.FAILED, "canceled": DeliveryStatus.FAILED,
}
ERRORS = {
    "20429": ErrorClass.RETRY_LATER, "21611": ErrorClass.RETRY_LATER,
    "30001": ErrorClass.RETRY_LATER, "21211": ErrorClass.PERMANENT, "21408": ErrorClass.PERMANENT,
    "21612": ErrorClass.PERMANENT, "21614": ErrorClass.PERMANENT, "21610": ErrorClass.OPTED_OUT,
    "30003": ErrorClass.UNDELIVERED, "30005": ErrorClass.UNDELIVERED,
    "30006": ErrorClass.UNDELIVERED, "30007": ErrorClass.FILTERED,
    "30008": ErrorClass.UNDELIVERED,
}


def spec(**changes: object) -> ProviderSpec:
    fields: dict[str, object] = {
        "name": "tw", "kind": "twilio", "url": "https://api.twilio.test", "token": TOKEN,
        "account": ACCOUNT, "sender_id": "+15005550006",
        "callback_url": "https://hooks.example.com/v1/webhooks/twilio",
    }
    return ProviderSpec.model_validate({**fields, **changes})


def callback(status: str = "delivered", code: str | None = None) -> dict[str, str]:
    form = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "MessageSid": "SM" + "a" * 32,
            "SmsSid": "SM" + "a" * 32, "MessageStatus": status, "SmsStatus": status,
            "To": "+13125550100", "From": "+15005550006"}
    return {**form, "ErrorCode": code} if code else form


def signed(form: dict[str, str], url: str = URL, token: str = TOKEN) -> tuple[dict[str, str], bytes]:
    signature = RequestValidator(token).compute_signature(url, form)
    return {"x-twilio-signature": signature}, urlencode(form).encode()


@pytest.mark.parametrize(("word", "status"), sorted(STATUSES.items()))
def test_status_word(word: str, status: DeliveryStatus) -> None:
    assert TABLE.status(word) is status
    assert TABLE.status(word.upper()) is status  # Twilio's words are lower case; case is no matter


@pytest.mark.parametrize(("code", "error"), sorted(ERRORS.items()))
def test_error_code(code: str, error: ErrorClass) -> None:
    assert TABLE.error(code) is error


def test_the_table_has_no_row_the_docs_list_lacks() -> None:
    assert dict(TABLE.statuses) == STATUSES
    assert dict(TABLE.errors) == ERRORS
    assert TABLE.status("receiving") is DeliveryStatus.UNKNOWN  # inbound words are not receipts
    assert TABLE.error("30010") is ErrorClass.UNDELIVERED  # an unlisted code


def test_a_correctly_signed_callback_is_accepted() -> None:
    headers, body = signed(callback())
    assert callbacks_for(spec()).verify(url=URL, headers=headers, body=body)


def test_twilio_may_sign_with_or_without_the_default_port() -> None:
    headers, body = signed(callback(), url="https://hooks.example.com:443/v1/webhooks/twilio?ref=k-1")
    assert callbacks_for(spec()).verify(url=URL, headers=headers, body=body)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda h, b: ({"x-twilio-signature": signed(callback(), token="guess")[0][
            "x-twilio-signature"]}, b, URL), id="another-token"),
        pytest.param(lambda h, b: (h, b.replace(b"delivered", b"undelivered"), URL), id="tampered-body"),
        pytest.param(lambda h, b: (h, b + b"&Extra=1", URL), id="added-field"),
        pytest.param(lambda h, b: (h, b, URL.replace("k-1", "k-2")), id="other-ref-in-url"),
        pytest.param(lambda h, b: (h, b, "https://evil.example.com/v1/webhooks/twilio?ref=k-1"),
                     id="wrong-host"),
        pytest.param(lambda h, b: ({}, b, URL), id="no-signature"),
        pytest.param(lambda h, b: (h, b"%ff=\xff", URL), id="not-a-form"),
    ],
)
def test_a_forged_callback_is_refused(
    forge: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes, str]],
) -> None:
    headers, body, url = forge(*signed(callback()))
    assert not callbacks_for(spec()).verify(url=url, headers=headers, body=body)


def test_a_webhooks_rule_signs_with_the_shared_key_and_its_algorithm() -> None:
    form = callback()
    signature = RequestValidator("shared-secret").compute_signature(URL, form, "HMAC_SHA256")
    headers = {"x-twilio-signature": signature,
               "x-twilio-webhooks-signature-settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    body = urlencode(form).encode()
    assert callbacks_for(spec(webhook_key="shared-secret")).verify(url=URL, headers=headers, body=body)
    assert not callbacks_for(spec()).verify(url=URL, headers=headers, body=body)  # no key configured
    unknown = {**headers, "x-twilio-webhooks-signature-settings": "key=k,algorithm=HMAC_MD5"}
    assert not callbacks_for(spec(webhook_key="shared-secret")).verify(url=URL, headers=unknown, body=body)


def test_receipts_read_the_final_status_its_code_and_our_reference() -> None:
    _, body = signed(callback("undelivered", "21610"))
    [receipt] = TwilioCallbacks(spec()).receipts(headers={}, body=body, url=URL)
    assert (receipt.provider_message_id, receipt.status, receipt.code, receipt.client_ref) == (
        "SM" + "a" * 32, DeliveryStatus.FAILED, "21610", "k-1")
    assert TABLE.error(receipt.code) is ErrorClass.OPTED_OUT
    assert (receipt.part, receipt.parts) == (1, 1)  # Twilio reports a message, not its parts


def test_an_intermediate_status_is_a_receipt_too() -> None:
    [receipt] = callbacks_for(spec()).receipts(headers={}, body=urlencode(callback("sent")).encode())
    assert receipt.status is DeliveryStatus.SENT
    assert not receipt.status.final
    assert receipt.client_ref is None
    assert receipt.code is None


@pytest.mark.parametrize(
    "body",
    [b"MessageStatus=delivered", b"MessageSid=SM1", b"MessageSid=SM+1%3B+drop&MessageStatus=sent",
     urlencode(callback("failed", "3000x")).encode(), b"\xff\xfe", b"not a form"],
)
def test_a_malformed_callback_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the protocol's documented error
        callbacks_for(spec()).receipts(headers={}, body=body)


def test_the_status_callback_carries_our_reference() -> None:
    assert status_callback_url("https://h/cb", "a b&c") == "https://h/cb?ref=a+b%26c"
    assert status_callback_url("https://h/cb?tenant=1", "k") == "https://h/cb?tenant=1&ref=k"


def test_a_route_without_sender_or_account_is_refused() -> None:
    with pytest.raises(ValueError, match="sender_id or messaging_service"):
        TwilioProvider(spec(sender_id=None), timeout_s=1, concurrency=1)
    with pytest.raises(ValueError, match="Account SID"):
        TwilioProvider(spec(account=None), timeout_s=1, concurrency=1)


# ---- answers, with MockTransport playing Twilio ---------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def twilio_error(status: int, code: int) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": f"error {code}", "status": status,
                                        "more_info": f"https://www.twilio.com/docs/errors/{code}"})


async def send(handler: Handler, n: int = 1, **changes: object) -> tuple[list[httpx.Request], SendReport]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    provider = TwilioProvider(spec(**changes), timeout_s=5, concurrency=2)
    await provider.aclose()
    provider._http.client = httpx.AsyncClient(  # the transport under test
        base_url="https://api.twilio.test", transport=httpx.MockTransport(record), auth=(ACCOUNT, TOKEN))
    try:
        report = await provider.send([Outgoing(f"k-{i}", "+13125550100", f"hi {i}") for i in range(n)])
    finally:
        await provider.aclose()
    return seen, report


async def test_the_request_is_twilios_form_with_basic_auth() -> None:
    seen, report = await send(lambda r: httpx.Response(201, json={"sid": "SM" + "b" * 32}),
                              messaging_service="MG" + "c" * 32)
    [request] = seen
    assert request.url.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request.headers["authorization"].startswith("Basic ")
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert form == {"To": "+13125550100", "Body": "hi 0", "From": "+15005550006",
                    "MessagingServiceSid": "MG" + "c" * 32,
                    "StatusCallback": "https://hooks.example.com/v1/webhooks/twilio?ref=k-0"}
    assert [(r.client_ref, r.accepted, r.provider_message_id) for r in report.results] == [
        ("k-0", True, "SM" + "b" * 32)]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (twilio_error(400, 21211), "rejected: 21211: error 21211"),
        (twilio_error(400, 21610), "rejected: 21610: error 21610"),
        (httpx.Response(400, text="<html>bad</html>"), "rejected: HTTP 400: <html>bad</html>"),
        (twilio_error(400, 21611), "rate limited 60.0"),
        (twilio_error(429, 20429), "rate limited 1.0"),
        (twilio_error(400, 21212), "refused"),
        (twilio_error(400, 21606), "refused"),
        (twilio_error(401, 20003), "refused"),
        (twilio_error(404, 20404), "refused"),
        (twilio_error(503, 20503), "unavailable"),
        (httpx.Response(201, text='{"sid": '), "ambiguous"),
        (httpx.Response(201, json={"status": "queued"}), "ambiguous"),
    ],
)
async def test_each_answer_is_read_as_twilio_means_it(answer: httpx.Response, expected: str) -> None:
    _, report = await send(lambda r: answer)
    failure, results = report.failure, report.results
    if expected.startswith("rejected"):
        assert failure is None
        assert [(r.accepted, r.error) for r in results] == [
            (False, expected.removeprefix("rejected: "))]
        return
    assert results == []
    if expected.startswith("rate limited"):
        assert isinstance(failure, ProviderRateLimited)
        assert failure.retry_after == float(expected.split()[-1])
    elif expected == "refused":
        assert type(failure) is ProviderError
        assert not failure.retryable
    else:
        assert isinstance(failure, ProviderUnavailable)
        assert failure.ambiguous == (expected == "ambiguous")


async def test_no_request_starts_after_a_failure() -> None:
    calls = 0

    def busy_after_two(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls > 2:
            return twilio_error(429, 20429)
        return httpx.Response(201, json={"sid": f"SM{calls:032d}"})

    seen, report = await send(busy_after_two, n=20)
    assert isinstance(report.failure, ProviderRateLimited)
    assert len(report.results) == 2
    assert len(seen) <= 4  # the two workers' requests in flight when the 429 came, no more
    assert {r.client_ref for r in report.results} == {"k-0", "k-1"}  # in request order
