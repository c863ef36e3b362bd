"""The Sinch adapter without I/O: its status table, how it batches (personalised texts in one
batch through Sinch's parameters) and reads Sinch's answers, its callback signature check
(against Sinch's own SDK validator) and its receipt parsing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sinch.domains.sms.sinch_events.v1.sms_sinch_event import SmsSinchEvent

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from sender.models import ProviderSpec
from sender.providers import sinch
from sender.providers.base import Outgoing, SendReport
from sender.providers.status import DeliveryStatus, ErrorClass

SECRET = "whsec-sinch-test"
NOW = 1_800_000_000
SPEC = ProviderSpec(name="sinch-a", kind="sinch", url="https://sinch.invalid", token="tok",
                    account="plan1", sender_id="Hexcast", webhook_key=SECRET)

STATUSES = {  # as Sinch writes them in delivery reports
    "Queued": DeliveryStatus.ACCEPTED, "Dispatched": DeliveryStatus.SENT,
    "Delivered": DeliveryStatus.DELIVERED, "Aborted": DeliveryStatus.FAILED,
    "Cancelled": DeliveryStatus.FAILED, "Rejected": DeliveryStatus.FAILED,
    "Deleted": DeliveryStatus.FAILED, "Failed": DeliveryStatus.FAILED,
    "Expired": DeliveryStatus.EXPIRED, "Unknown": DeliveryStatus.UNKNOWN,
}
ERRORS = {
    402: ErrorClass.PERMANENT, 403: ErrorClass.UNDELIVERED, 404: ErrorClass.RETRY_LATER,
    405: ErrorClass.PERMANENT, 406: ErrorClass.UNDELIVERED, 407: ErrorClass.UNDELIVERED,
    408: ErrorClass.PERMANENT, 410: ErrorClass.PERMANENT, 411: ErrorClass.PERMANENT,
    412: ErrorClass.PERMANENT, 413: ErrorClass.PERMANENT, 15: ErrorClass.FILTERED,
    62: ErrorClass.FILTERED, 100: ErrorClass.PERMANENT, 150: ErrorClass.PERMANENT,
    151: ErrorClass.PERMANENT, 300: ErrorClass.PERMANENT, 360: ErrorClass.RETRY_LATER,
}


def test_the_table_has_exactly_the_rows_tested() -> None:
    assert set(sinch.TABLE.statuses) == {w.lower() for w in STATUSES}
    assert set(sinch.TABLE.errors) == {str(c) for c in ERRORS}


@pytest.mark.parametrize(("word", "expected"), STATUSES.items())
def test_status_row(word: str, expected: DeliveryStatus) -> None:
    assert sinch.TABLE.status(word) is expected
    assert sinch.TABLE.status(word.upper()) is expected  # the SDK's enum spelling


@pytest.mark.parametrize(("code", "expected"), ERRORS.items())
def test_error_row(code: int, expected: ErrorClass) -> None:
    assert sinch.TABLE.error(str(code)) is expected


def test_an_unlisted_code_is_undelivered_and_an_unlisted_word_unknown() -> None:
    assert sinch.TABLE.error("999") is ErrorClass.UNDELIVERED
    assert sinch.TABLE.status("Teleported") is DeliveryStatus.UNKNOWN


def out(ref: str, to: str, body: str = "hi") -> Outgoing:
    return Outgoing(client_ref=ref, to=to, body=body)


def refs(batches: list[sinch.Batch]) -> list[list[str]]:
    return [[m.client_ref for m in b.messages] for b in batches]


def test_batches_group_by_body_and_never_name_a_number_twice() -> None:
    msgs = [out("a", "+4915100000001", "x"), out("b", "+4915100000002", "y"),
            out("c", "+4915100000001", "x"), out("d", "+4915100000003", "x")]
    found = sinch.batches(msgs)
    assert refs(found) == [["a", "d"], ["b"], ["c"]]  # "x" and "y" share nothing
    assert [(b.body, b.values) for b in found] == [("x", None), ("y", None), ("x", None)]


def test_batches_hold_at_most_the_size() -> None:
    msgs = [out(str(i), f"+49151000{i:05d}", f"hi {i}") for i in range(5)]
    assert [len(b.messages) for b in sinch.batches(msgs, size=2)] == [2, 2, 1]


def rendered(batch: sinch.Batch, number: str) -> str:
    """A recipient's text as Sinch renders a batch (written out here, not taken from the code
    under test): each ``${key}`` whose key is a parameter becomes the number's value."""
    parameters = {} if batch.values is None else {sinch.PARAMETER: batch.values}
    return re.sub(r"\$\{([A-Za-z0-9._-]+)\}",
                  lambda m: parameters[m[1]][number] if m[1] in parameters else m[0], batch.body)


NAMES = ["Ann", "Bob", "Carla", "Dmitri", "Zoë", "$5", "}", "{", "x" * 170]
BODIES = st.one_of(
    st.text(alphabet="ab ${}v", max_size=12),  # shared or not, "${" now and then
    st.builds("{}{}{}".format, st.sampled_from(["", "Hi ", "Hi $", "Dear "]), st.sampled_from(NAMES),
              st.sampled_from(["", ", 30% off", ", ${x} off", "!"])),
)
MESSAGES = st.lists(st.tuples(st.integers(0, 5), BODIES), max_size=40)


@settings(max_examples=300, deadline=None)
@given(drawn=MESSAGES, size=st.integers(1, 6))
def test_every_message_is_in_one_batch_and_gets_exactly_its_own_text(
    drawn: list[tuple[int, str]], size: int,
) -> None:
    msgs = [out(f"m{i}", f"+491510000000{n}", body) for i, (n, body) in enumerate(drawn)]
    found = sinch.batches(msgs, size=size)
    assert sorted(ref for batch in refs(found) for ref in batch) == sorted(m.client_ref for m in msgs)
    for batch in found:
        numbers = [m.to for m in batch.messages]
        assert 1 <= len(numbers) <= size
        assert len(set(numbers)) == len(numbers)
        assert [rendered(batch, m.to) for m in batch.messages] == [m.body for m in batch.messages]
        if batch.values is not None:  # within Sinch's limits, one placeholder
            assert batch.body.count("${") == 1
            assert len(batch.body) <= sinch.MAX_BODY
            assert set(batch.values) == set(numbers)
            assert all(1 <= len(v) <= sinch.MAX_VALUE for v in batch.values.values())


def test_personalised_texts_share_one_batch_through_a_parameter() -> None:
    names = ["Ann", "Bob", "Carla", "Ann"]
    msgs = [out(str(i), f"+49151000{i:05d}", f"{name}, Black Friday: 30% off until midnight")
            for i, name in enumerate(names)]
    [batch] = sinch.batches(msgs)
    assert batch.body == "${v}, Black Friday: 30% off until midnight"
    assert batch.values == {m.to: name for m, name in zip(msgs, names, strict=True)}


def test_prefix_and_suffix_both_stay_literal() -> None:
    [batch] = sinch.batches([out("a", "+4915100000001", "Hi Ann, see you"),
                             out("b", "+4915100000002", "Hi Bob, see you")])
    assert (batch.body, batch.values) == ("Hi ${v}, see you",
                                          {"+4915100000001": "Ann", "+4915100000002": "Bob"})


@pytest.mark.parametrize(("bodies", "expected"), [
    pytest.param(["Hi ${name}", "Hi ${name}", "Hi Bob"], [["0", "1"], ["2"]], id="a-literal-${"),
    pytest.param(["Hi Ann", "Hi " + "b" * 161], [["0"], ["1"]], id="a-value-over-160"),
    pytest.param(["Ann", "Bob"], [["0"], ["1"]], id="nothing-shared"),
    pytest.param(["Hi", "Hi!"], [["0", "1"]], id="a-value-of-one-character"),
])
def test_texts_that_cannot_share_a_parameter_go_alone(bodies: list[str], expected: list[list[str]],
                                                      ) -> None:
    msgs = [out(str(i), f"+49151000{i:05d}", body) for i, body in enumerate(bodies)]
    found = sinch.batches(msgs)
    assert refs(found) == expected
    assert all(rendered(b, m.to) == m.body for b in found for m in b.messages)


def test_a_dollar_before_the_value_stays_in_the_values() -> None:
    [batch] = sinch.batches([out("a", "+4915100000001", "Now $5"), out("b", "+4915100000002", "Now $7")])
    assert (batch.body, batch.values) == ("Now ${v}", {"+4915100000001": "$5", "+4915100000002": "$7"})


def test_a_number_twice_goes_in_a_second_batch() -> None:
    msgs = [out("a", "+4915100000001", "Hi Ann"), out("b", "+4915100000002", "Hi Bob"),
            out("c", "+4915100000001", "Hi Cy")]
    assert refs(sinch.batches(msgs)) == [["a", "b"], ["c"]]


@pytest.fixture
async def provider() -> AsyncIterator[sinch.SinchProvider]:
    found = sinch.SinchProvider(SPEC, timeout_s=5.0, concurrency=2)
    yield found
    await found.aclose()


def test_a_route_without_service_plan_is_refused_where_it_is_read() -> None:
    with pytest.raises(ValidationError, match="service plan id"):
        ProviderSpec(name="s", kind="sinch", token="t", sender_id="Hexcast")


async def test_the_payload_is_one_body_to_its_numbers(provider: sinch.SinchProvider) -> None:
    one = provider.payload(sinch.Batch([out("ref-1", "+4915100000001")], "hi"))
    assert one == {"to": ["+4915100000001"], "body": "hi", "type": "mt_text", "from": "Hexcast",
                   "delivery_report": "per_recipient_final", "client_reference": "ref-1"}
    many = provider.payload(sinch.Batch([out("ref-1", "+4915100000001"), out("ref-2", "+4915100000002")],
                                        "hi"))
    assert many["client_reference"] == "ref-1+1"
    assert "callback_url" not in many
    assert "parameters" not in many


async def test_a_personalised_payload_carries_each_numbers_value(provider: sinch.SinchProvider) -> None:
    [batch] = sinch.batches([out("a", "+4915100000001", "Hi Ann!"), out("b", "+4915100000002", "Hi Bob!")])
    payload = provider.payload(batch)
    assert (payload["body"], payload["to"]) == ("Hi ${v}!", ["+4915100000001", "+4915100000002"])
    assert payload["parameters"] == {"v": {"+4915100000001": "Ann", "+4915100000002": "Bob"}}


def answer(status: int, body: object = None, text: str | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://sinch.invalid/xms/v1/plan1/batches")
    if text is not None:
        return httpx.Response(status, text=text, request=request)
    return httpx.Response(status, json=body, request=request)


BATCH = [out("a", "+4915100000001"), out("b", "+4915100000002")]


async def test_a_created_batch_names_each_message_by_batch_and_number(
    provider: sinch.SinchProvider,
) -> None:
    results = provider.read_answer(BATCH, answer(201, {"id": "01BATCH", "to": ["4915100000001"]}))
    assert [(r.client_ref, r.accepted, r.provider_message_id) for r in results] == [
        ("a", True, "01BATCH:+4915100000001"), ("b", True, "01BATCH:+4915100000002")]


@pytest.mark.parametrize("reply", [answer(200, text='{"results": [{"client_ref": '),
                                   answer(201, {"to": []}), answer(201, {"id": 7})])
async def test_an_unreadable_success_is_ambiguous(
    provider: sinch.SinchProvider, reply: httpx.Response
) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        provider.read_answer(BATCH, reply)
    assert caught.value.ambiguous


async def test_a_refused_number_refuses_the_messages_of_its_batch(
    provider: sinch.SinchProvider,
) -> None:
    body = {"code": "syntax_invalid_parameter_format", "text": "Invalid format of parameter 'to'"}
    results = provider.read_answer(BATCH, answer(400, body))
    assert [(r.accepted, r.error) for r in results] == [
        (False, "syntax_invalid_parameter_format: Invalid format of parameter 'to'")] * 2


@pytest.mark.parametrize("reply", [
    answer(400, {"code": "syntax_invalid_parameter_format", "text": "Invalid parameter 'from'"}),
    answer(401, text="Unauthorized"),
    answer(403, {"code": "missing_callback_url", "text": "no URL"}),
    answer(404, text="Not Found"),
])
async def test_configuration_errors_are_refused_for_good(
    provider: sinch.SinchProvider, reply: httpx.Response
) -> None:
    with pytest.raises(ProviderError) as caught:
        provider.read_answer(BATCH, reply)
    assert not caught.value.retryable
    assert not isinstance(caught.value, ProviderUnavailable | ProviderRateLimited)


async def test_a_malformed_number_is_refused_alone_and_never_sent(
    provider: sinch.SinchProvider,
) -> None:
    report = await provider.send([out("x", "4915100000001"), out("y", "+0123")])
    assert report.failure is None
    assert [(r.client_ref, r.accepted) for r in report.results] == [("x", False), ("y", False)]
    assert all(r.error and r.error.startswith("syntax_invalid_parameter_format") for r in report.results)


def replies(*answers: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    """Answers by body: the n-th distinct body gets ``answers[n]`` (a mock transport: no I/O)."""
    bodies: list[str] = []

    async def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)["body"]
        if body not in bodies:
            bodies.append(body)
        await asyncio.sleep(0.01)  # in flight together, as with a real server
        return answers[bodies.index(body)](request)

    return httpx.MockTransport(handle)


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, json={"id": "01OK", **json.loads(request.content)})


def limited(request: httpx.Request) -> httpx.Response:
    return httpx.Response(429, text="Too Many Requests")


def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


async def send_with(transport: httpx.MockTransport, concurrency: int) -> SendReport:
    """Three messages with three bodies that share no prefix or suffix (three batches)
    through ``transport``."""
    provider = sinch.SinchProvider(SPEC, timeout_s=5.0, concurrency=concurrency)
    await provider._http.client.aclose()
    provider._http.client = httpx.AsyncClient(base_url=SPEC.url, transport=transport)
    try:
        return await provider.send([out("a", "+4915100000001", "one"),
                                    out("b", "+4915100000002", "two"),
                                    out("c", "+4915100000003", "six")])
    finally:
        await provider.aclose()


@pytest.mark.parametrize(("second", "expected"), [(limited, ProviderRateLimited),
                                                  (timed_out, ProviderUnavailable)])
async def test_a_failed_batch_fails_only_the_unanswered(
    second: Callable[[httpx.Request], httpx.Response], expected: type[ProviderError],
) -> None:
    report = await send_with(replies(created, second), concurrency=1)
    assert [(r.client_ref, r.provider_message_id) for r in report.results] == [
        ("a", "01OK:+4915100000001")]
    assert isinstance(report.failure, expected)  # for b, and c that never started


async def test_an_ambiguous_failure_speaks_for_the_unanswered() -> None:
    report = await send_with(replies(limited, timed_out, limited), concurrency=2)
    assert report.results == []
    assert isinstance(report.failure, ProviderUnavailable)
    assert report.failure.ambiguous  # b may have been taken: none of them is resent blindly


def signed(body: bytes, *, stamp: int = NOW, nonce: str = "n0nce", secret: str = SECRET,
           ) -> dict[str, str]:
    """Headers as Sinch signs a callback (written out here, not taken from the code under test)."""
    data = body + b"." + nonce.encode() + b"." + str(stamp).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()
    return {"x-sinch-webhook-signature": signature, "x-sinch-webhook-signature-nonce": nonce,
            "x-sinch-webhook-signature-timestamp": str(stamp),
            "x-sinch-webhook-signature-algorithm": "HmacSHA256", "content-type": "application/json"}


REPORT = json.dumps({
    "type": "recipient_delivery_report_sms", "batch_id": "01BATCH", "recipient": "4915100000001",
    "code": 0, "status": "Delivered", "at": "2026-12-01T10:00:00.000Z", "client_reference": "a",
}).encode()
URL = "https://hexcast.example/v1/webhooks/providers/sinch-a"


def checker(now: float = NOW) -> sinch.SinchCallbacks:
    return sinch.SinchCallbacks(SPEC, now=lambda: now)


def test_a_signed_callback_verifies_here_and_in_sinchs_sdk() -> None:
    headers = signed(REPORT)
    assert checker().verify(url=URL, headers=headers, body=REPORT)
    assert SmsSinchEvent(SECRET).validate_authentication_header(headers, REPORT)


def test_the_url_is_not_part_of_sinchs_signature() -> None:
    assert checker().verify(url="https://elsewhere.example/x", headers=signed(REPORT), body=REPORT)


@pytest.mark.parametrize("forge", [
    pytest.param(lambda h, b: ({**h, "x-sinch-webhook-signature": "AAAA"}, b), id="forged"),
    pytest.param(lambda h, b: (h, b.replace(b"Delivered", b"Failed")), id="tampered-body"),
    pytest.param(lambda h, b: ({**h, "x-sinch-webhook-signature-nonce": "other"}, b), id="nonce"),
    pytest.param(lambda h, b: ({**h, "x-sinch-webhook-signature-algorithm": "HmacSHA1"}, b),
                 id="algorithm"),
    pytest.param(lambda h, b: ({k: v for k, v in h.items() if "nonce" not in k}, b), id="no-nonce"),
    pytest.param(lambda h, b: (signed(b, secret="other-secret"), b), id="other-secret"),
])
def test_a_forged_or_tampered_callback_is_refused(forge: Callable[..., tuple[dict[str, str], bytes]],
                                                   ) -> None:
    headers, body = forge(signed(REPORT), REPORT)
    assert not checker().verify(url=URL, headers=headers, body=body)


@pytest.mark.parametrize("age_s", [301, -301, 86_400])
def test_an_old_or_future_signature_is_refused(age_s: int) -> None:
    headers = signed(REPORT, stamp=NOW - age_s)
    assert not checker().verify(url=URL, headers=headers, body=REPORT)
    assert checker(now=NOW - age_s).verify(url=URL, headers=headers, body=REPORT)


def test_a_route_without_webhook_key_verifies_nothing() -> None:
    spec = SPEC.model_copy(update={"webhook_key": None})
    assert not sinch.SinchCallbacks(spec, now=lambda: NOW).verify(
        url=URL, headers=signed(REPORT), body=REPORT)


def test_a_recipient_report_names_the_message_as_send_answered_it() -> None:
    [receipt] = checker().receipts(headers={}, body=REPORT)
    assert receipt.provider_message_id == sinch.message_id("01BATCH", "+4915100000001")
    assert (receipt.status, receipt.code, receipt.client_ref) == (DeliveryStatus.DELIVERED, "0", None)
    assert (receipt.part, receipt.parts) == (1, 1)


def test_a_failed_report_keeps_its_code() -> None:
    body = json.dumps({"type": "recipient_delivery_report_sms", "batch_id": "01B",
                       "recipient": "+4915100000001", "code": "402", "status": "Aborted"}).encode()
    [receipt] = checker().receipts(headers={}, body=body)
    assert (receipt.provider_message_id, receipt.status, receipt.code) == (
        "01B:+4915100000001", DeliveryStatus.FAILED, "402")
    assert sinch.TABLE.error(receipt.code) is ErrorClass.PERMANENT


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'"text"',
    json.dumps({"type": "delivery_report_sms", "batch_id": "01B", "statuses": []}).encode(),
    json.dumps({"type": "recipient_delivery_report_sms", "recipient": "+491", "status": "X"}).encode(),
    json.dumps({"type": "recipient_delivery_report_sms", "batch_id": "01B", "recipient": 491,
                "status": "Delivered"}).encode(),
    json.dumps({"type": "recipient_delivery_report_sms", "batch_id": "01B", "recipient": "+491",
                "status": "Delivered", "code": [0]}).encode(),
])
def test_a_malformed_callback_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- what the Callbacks protocol raises
        checker().receipts(headers={}, body=body)
