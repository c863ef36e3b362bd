"""The SMPP route's pure parts: its configuration checks, id normalisation, and how a
``deliver_sm`` becomes a receipt or a reply (no sockets: the binds are tested against the
simulator's SMSC in tests/integration/test_provider_smpp.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hexcast.core.errors import ConfigError
from hexcast.core.smpp.concat import DC_UCS2, encode_text, split
from hexcast.core.smpp.pdu import DeliverSm
from hexcast.core.smpp.receipt import MessageState, ReceiptText, format_receipt, receipt_tlvs
from sender.models import ProviderSpec, SmppOptions
from sender.providers import DeliveryStatus, ErrorClass
from sender.providers.smpp import TABLE, SmppProvider, canonical_id


def spec(**overrides: object) -> ProviderSpec:
    fields: dict[str, object] = {"name": "smsc-a", "kind": "smpp", "url": "smpp://127.0.0.1:2775",
                                 "account": "hexcast", "token": "secret1",
                                 "sender_id": "+13125550100"}
    return ProviderSpec.model_validate({**fields, **overrides})


def provider(**overrides: object) -> SmppProvider:
    return SmppProvider(spec(**overrides), timeout_s=1.0, concurrency=1)


def receipt_pdu(text: str = "", *, tlvs: dict[int, bytes] | None = None) -> DeliverSm:
    coding, data = encode_text(text)
    return DeliverSm(source_addr="13125550101", destination_addr="13125550100", esm_class=0x04,
                     data_coding=coding, short_message=data, tlvs=tlvs or {})


@pytest.mark.parametrize(("overrides", "says"), [
    ({"url": "https://smsc.example.com"}, "smpp://host:port"),
    ({"kind": "twilio", "account": "AC1", "url": "smpp://x:1"}, "smpp://host:port"),
    ({"smpp": {"window": 0}}, "window"),
    ({"smpp": {"long_messages": "bits"}}, "long_messages"),
    ({"smpp": {"binds": 1, "colour": "red"}}, "colour"),
    ({"account": None}, "system_id"),
    ({"token": "nine-char"}, "an SMPP password has 1 to 8 characters"),
])
def test_a_bad_route_is_refused_saying_what(overrides: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        spec(**overrides)


@pytest.mark.parametrize(("overrides", "says"), [
    ({"sender_id": None, "messaging_service": "x"}, "smsc-a: sender_id"),
    ({"url": "smpp://127.0.0.1"}, "smsc-a: url"),
])
def test_the_adapter_names_the_route_and_field(overrides: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        provider(**overrides)


def test_an_smpp_route_needs_its_smsc() -> None:
    with pytest.raises(ValidationError, match="needs its SMSC as smpp://host:port"):
        ProviderSpec(name="smsc-a", kind="smpp", account="hexcast", token="x", sender_id="+1312")


def test_defaults_are_one_transceiver_with_a_window_of_ten() -> None:
    opts = spec().smpp or SmppOptions()
    assert (opts.binds, opts.bind_mode, opts.window, opts.long_messages) == (
        1, "transceiver", 10, "udh")


@given(st.integers(min_value=0, max_value=2**64))
def test_hex_answers_and_decimal_receipts_name_the_same_message(n: int) -> None:
    answered = canonical_id(f"{n:x}", "hex_to_decimal", receipt=False)
    assert answered == canonical_id(str(n), "hex_to_decimal", receipt=True)
    assert canonical_id(str(n), "decimal_to_hex", receipt=False) == canonical_id(
        f"{n:X}", "decimal_to_hex", receipt=True)
    assert canonical_id(f"{n:x}", "same", receipt=False) == f"{n:x}"


def test_a_receipt_reads_its_tlvs_first_and_its_text_for_the_error() -> None:
    text = format_receipt(ReceiptText(id="ignored", stat="DELIVRD", err="000"))
    [receipt], replies = provider().read_deliveries([receipt_pdu(
        text, tlvs=receipt_tlvs("5f3a", MessageState.UNDELIVERABLE))])
    assert replies == []
    assert (receipt.provider_message_id, receipt.status, receipt.code) == (
        "5f3a", DeliveryStatus.FAILED, None)
    assert receipt.by_part_id  # each part of a long message has its own receipt


def test_a_receipt_without_tlvs_is_read_from_its_text() -> None:
    text = format_receipt(ReceiptText(id="0012345", stat="UNDELIV", err="034"))
    [receipt], _ = provider(smpp={"receipt_ids": "decimal_to_hex"}).read_deliveries(
        [receipt_pdu(text)])
    assert (receipt.provider_message_id, receipt.status, receipt.code) == (
        str(int("0012345", 16)), DeliveryStatus.FAILED, "034")
    assert TABLE.error(receipt.code) is ErrorClass.UNDELIVERED


@pytest.mark.parametrize(("stat", "status"), [
    ("DELIVRD", DeliveryStatus.DELIVERED), ("EXPIRED", DeliveryStatus.EXPIRED),
    ("UNDELIV", DeliveryStatus.FAILED), ("REJECTD", DeliveryStatus.FAILED),
    ("DELETED", DeliveryStatus.FAILED), ("ENROUTE", DeliveryStatus.SENT),
    ("ACCEPTD", DeliveryStatus.SENT), ("UNKNOWN", DeliveryStatus.UNKNOWN),
])
def test_every_stat_word_maps(stat: str, status: DeliveryStatus) -> None:
    [receipt], _ = provider().read_deliveries(
        [receipt_pdu(format_receipt(ReceiptText(id="77", stat=stat)))])
    assert receipt.status is status


def test_a_reply_is_read_and_a_broken_delivery_is_left_alone() -> None:
    coding, data = encode_text("STOP")
    stop = DeliverSm(source_addr="13125550101", destination_addr="13125550100",
                     data_coding=coding, short_message=data)
    emoji = DeliverSm(source_addr="13125550102", destination_addr="13125550100",
                      data_coding=DC_UCS2, short_message="Merci 🎄".encode("utf-16-be"))
    broken = DeliverSm(source_addr="1", esm_class=0x04, short_message=b"no receipt here")
    odd = DeliverSm(source_addr="1", data_coding=0xF5, short_message=b"\x00\x01")
    receipts, replies = provider().read_deliveries([stop, broken, emoji, odd])
    assert receipts == []
    assert [(r.phone, r.to, r.body) for r in replies] == [
        ("+13125550101", "13125550100", "STOP"), ("+13125550102", "13125550100", "Merci 🎄")]
    again, _ = provider().read_deliveries([stop])[1], None
    assert again[0].ref == replies[0].ref  # the same reply delivered again dedupes


@pytest.mark.parametrize(("code", "error"), [
    ("submit-0x0B", ErrorClass.PERMANENT), ("submit-0x58", ErrorClass.RETRY_LATER),
    ("submit-0x14", ErrorClass.RETRY_LATER), ("submit-0x45", ErrorClass.UNDELIVERED),
])
def test_submit_statuses_map(code: str, error: ErrorClass) -> None:
    assert TABLE.error(code) is error


def test_a_long_reply_is_whole_once_its_last_part_comes_in_any_order() -> None:
    text = "Please stop sending me these offers, I moved abroad 🌍 " * 3
    parts = split(text, mode="udh", reference=42)
    assert len(parts) > 1
    pdus = [DeliverSm(source_addr="13125550101", destination_addr="13125550100",
                      esm_class=p.esm_class_bits, data_coding=p.data_coding,
                      short_message=p.short_message) for p in parts]
    other = DeliverSm(source_addr="13125550199", destination_addr="13125550100",
                      esm_class=parts[0].esm_class_bits, data_coding=parts[0].data_coding,
                      short_message=parts[0].short_message)  # same reference, another phone
    adapter = provider()
    _, first = adapter.read_deliveries([pdus[-1], other, *pdus[1:-1]])
    assert first == []  # still missing part 1
    _, [reply] = adapter.read_deliveries([pdus[0]])
    assert (reply.phone, reply.body) == ("+13125550101", text)
