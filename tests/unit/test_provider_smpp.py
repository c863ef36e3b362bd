"""The SMPP route's pure parts: its configuration checks, id normalisation, and how a
``deliver_sm`` becomes a receipt or a reply (no sockets: the binds are tested against the
simulator's SMSC in tests/integration/test_provider_smpp.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hexcast.core.errors import ConfigError
from hexcast.core.smpp.concat import DC_GSM7, DC_UCS2, Part, encode_text, reassemble, split
from hexcast.core.smpp.pdu import Command, DeliverSm, Pdu, Status, SubmitSmResp
from hexcast.core.smpp.receipt import MessageState, ReceiptText, format_receipt, receipt_tlvs
from sender.models import ProviderSpec, SmppOptions
from sender.providers import DeliveryStatus, ErrorClass
from sender.providers.base import Outgoing, Receipt, Reply
from sender.providers.smpp import TABLE, SmppProvider, UnmatchedReceipts, answered_id, canonical_id
from sender.routes_file import load_routes


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
    ({"smpp": {"data_coding": "latin1"}}, "data_coding"),
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
    [receipt], replies, refused = provider().read_deliveries([receipt_pdu(
        text, tlvs=receipt_tlvs("5f3a", MessageState.UNDELIVERABLE))])
    assert (replies, refused) == ([], [])
    assert (receipt.provider_message_id, receipt.status, receipt.code) == (
        "5f3a", DeliveryStatus.FAILED, None)
    assert receipt.by_part_id  # each part of a long message has its own receipt


def test_a_receipt_without_tlvs_is_read_from_its_text() -> None:
    text = format_receipt(ReceiptText(id="0012345", stat="UNDELIV", err="034"))
    [receipt], _, _ = provider(smpp={"receipt_ids": "decimal_to_hex"}).read_deliveries(
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
    [receipt], _, _ = provider().read_deliveries(
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
    receipts, replies, refused = provider().read_deliveries([stop, broken, emoji, odd])
    assert (receipts, refused) == ([], [])  # logged and answered: sent again, as unreadable
    assert [(r.phone, r.to, r.body) for r in replies] == [
        ("+13125550101", "13125550100", "STOP"), ("+13125550102", "13125550100", "Merci 🎄")]
    again = provider().read_deliveries([stop]).replies
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
    first = adapter.read_deliveries([pdus[-1], other, *pdus[1:-1]]).replies
    assert first == []  # still missing part 1
    [reply] = adapter.read_deliveries([pdus[0]]).replies
    assert (reply.phone, reply.body) == ("+13125550101", text)


def simulator_receipt(answered: str, text_id: str, *, tlv: bool = True) -> DeliverSm:
    """A receipt as an SMSC that answers ``answered`` and writes ``text_id`` in the text sends
    it (the simulator's ``smpp_id_format = "decimal"``: the TLV as answered, the text decimal)."""
    text = format_receipt(ReceiptText(id=text_id, stat="DELIVRD", err="000"))
    return receipt_pdu(text, tlvs=receipt_tlvs(answered, MessageState.DELIVERED) if tlv else None)


@pytest.mark.parametrize(("rule", "answered", "text_id"), [
    ("hex_to_decimal", "5f3a", str(0x5F3A)),  # not a decimal number: was unreadable, lost
    ("hex_to_decimal", "1234", str(0x1234)),  # all digits: was read as 1234, never matched
    ("decimal_to_hex", "24378", "5F3A"),
    ("same", "5f3a", "5f3a"),
])
def test_a_receipt_names_the_id_its_submit_was_answered_with(
    rule: str, answered: str, text_id: str,
) -> None:
    """The receipted_message_id TLV repeats the submit_sm_resp id as it was; receipt_ids
    normalises only the text's id:, with or without the TLV the receipt lands on the same id."""
    adapter = provider(smpp={"receipt_ids": rule})
    kept = answered_id(answered, rule)
    with_tlv, text_only = adapter.read_deliveries(
        [simulator_receipt(answered, text_id), simulator_receipt(answered, text_id, tlv=False)]
    ).receipts
    assert with_tlv.provider_message_id == text_only.provider_message_id == kept
    assert with_tlv.status is text_only.status is DeliveryStatus.DELIVERED


def test_an_answer_id_that_does_not_read_as_the_rule_says_is_kept_as_given() -> None:
    """The SMSC took the message: its id is kept whatever it looks like, and the receipt's TLV,
    which repeats it, still names it."""
    assert answered_id("msg-7", "hex_to_decimal") == "msg-7"
    [receipt] = provider(smpp={"receipt_ids": "hex_to_decimal"}).read_deliveries(
        [simulator_receipt("msg-7", "msg-7")]).receipts
    assert receipt.provider_message_id == "msg-7"


async def test_a_text_id_that_does_not_read_is_delivered_again_after_the_rest_is_kept() -> None:
    """A route whose receipt_ids does not fit its SMSC (the text's id: is hex, the rule says
    decimal): that receipt is not acknowledged (the SMSC sends it again, and once the setting
    is put right it lands); the batch's other receipts and replies are kept first."""
    adapter = provider(smpp={"receipt_ids": "hex_to_decimal"})
    coding, data = encode_text("HELP")
    help_sm = DeliverSm(source_addr="13125550101", destination_addr="13125550100",
                        data_coding=coding, short_message=data)
    bad = simulator_receipt("5f3a", "5f3a", tlv=False)
    good = simulator_receipt("5f3a", str(0x5F3A), tlv=False)
    kept: list[tuple[list[Receipt], list[Reply]]] = []

    async def keep(receipts: list[Receipt], replies: list[Reply]) -> None:
        kept.append((receipts, replies))

    with pytest.raises(UnmatchedReceipts, match="id:5f3a is not decimal"):
        await adapter.hand_over(keep, [bad, good, help_sm])
    [(receipts, replies)] = kept
    assert [r.provider_message_id for r in receipts] == [str(0x5F3A)]
    assert [r.body for r in replies] == ["HELP"]
    await adapter.hand_over(keep, [good])  # nothing refused: answered ESME_ROK
    assert len(kept) == 2


def test_data_coding_ucs2_sends_even_gsm_text_as_ucs2() -> None:
    text = "Sale today at 9 [ends] " * 4  # GSM-7 fits: 96 septets, one part
    assert {p.data_coding for p in split(text, mode="udh", reference=1)} == {DC_GSM7}
    parts = split(text, mode="udh", reference=1,
                  coding=(spec(smpp={"data_coding": "ucs2"}).smpp or SmppOptions()).data_coding)
    assert len(parts) == 2  # 92 UTF-16 units: two UCS-2 parts of at most 67
    assert {p.data_coding for p in parts} == {DC_UCS2}
    assert reassemble(parts) == text
    assert SmppOptions().data_coding == "auto"


def test_an_unknown_data_coding_names_the_route_and_field(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSC_PASSWORD", "secret1")
    routes = tmp_path / "routes.toml"
    routes.write_text('[[route]]\nname = "smsc-a"\nkind = "smpp"\nurl = "smpp://127.0.0.1:2775"\n'
                      'account = "hexcast"\ntoken = { env = "SMSC_PASSWORD" }\n'
                      'sender_id = "+13125550100"\nsmpp = { data_coding = "latin1" }\n')
    with pytest.raises(ConfigError, match=r"route 'smsc-a': smpp\.data_coding: .*'auto' or 'ucs2'"):
        load_routes(str(routes))
    routes.write_text(routes.read_text().replace('"latin1"', '"ucs2"'))
    [route] = load_routes(str(routes))
    assert route.smpp == SmppOptions(data_coding="ucs2")


async def test_a_route_submits_each_part_in_its_data_coding(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the route hands its binds: GSM-7 text in UCS-2 parts on a ``ucs2`` route, GSM-7 on
    an ``auto`` one (the SMSC side stands in for the binds; the splitting is what is checked)."""
    text = "Sale today at 9 [ends] " * 4
    for coding, expected in (("auto", [DC_GSM7]), ("ucs2", [DC_UCS2, DC_UCS2])):
        adapter = provider(smpp={"data_coding": coding, "receipt_ids": "hex_to_decimal"})
        sent: list[Part] = []

        async def smsc(msg: Outgoing, part: Part, sent: list[Part] = sent) -> Pdu:
            sent.append(part)
            return Pdu(Command.SUBMIT_SM_RESP, Status.ESME_ROK, len(sent),
                       SubmitSmResp(f"{0x5F3A + len(sent):x}"))

        monkeypatch.setattr(adapter, "_submit", smsc)
        result = await adapter.send([Outgoing("ref-1", "+13125550101", text)])
        assert [p.data_coding for p in sent] == expected
        assert reassemble(sent) == text
        [answer] = result.results
        assert answer.provider_message_id == str(0x5F3B)  # answered in hex, kept in decimal
