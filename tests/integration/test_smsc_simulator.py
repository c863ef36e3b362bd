"""The simulator's SMSC mode, spoken to by an independent SMPP client (smpplib, blocking) while
the simulator runs as a subprocess: it proves the simulator speaks SMPP 3.4 as others do."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from hexcast.core.smpp.receipt import parse_receipt
from hexcast.testing import running_sim
from providersim import SimConfig

SYSTEM_ID, PASSWORD = "hexcast", "secret"
LONG_TEXT = "Grüße aus Köln 🎉 " * 6 + "Привет, мир! 👍🏽 " * 4 + "終わり😀"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[str, int]]:
    """The simulator with an SMSC on a free port: ``(http base url, smpp port)``."""
    config = SimConfig(smpp_port=0, smpp_system_id=SYSTEM_ID, smpp_password=PASSWORD,
                       dlr_delay_s=0.2)
    with running_sim(config) as base_url:
        port = httpx.get(f"{base_url}/smpp/stats").json()["port"]
        yield base_url, port


class Esme:
    """A smpplib client whose received deliver_sm are kept; pumped with :meth:`pump`."""

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client("127.0.0.1", port, timeout=5,
                                            allow_unknown_opt_params=True)
        self.sent: list[Any] = []
        self.received: list[Any] = []
        self.errors: list[int] = []
        self.client.set_message_sent_handler(lambda pdu: self.sent.append(pdu))
        self.client.set_message_received_handler(lambda pdu: self.received.append(pdu))
        self.client.set_error_pdu_handler(lambda pdu: self.errors.append(int(pdu.status)))
        self.client.connect()

    def pump_until(self, check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not check() and time.monotonic() < deadline:
            self.client.poll()
            time.sleep(0.01)
        return check()

    def close(self) -> None:
        try:
            self.client.unbind()
        finally:
            self.client.disconnect()


def _bound(port: int) -> Esme:
    esme = Esme(port)
    esme.client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
    return esme


def _ledger(base_url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(f"{base_url}/ledger", params={"limit": 10_000}).json()["items"]
    return items


def test_long_ucs2_message_with_receipts(sim: tuple[str, int]) -> None:
    base_url, port = sim
    esme = _bound(port)
    parts, coding, esm_class = smpplib.gsm.make_parts(LONG_TEXT)
    assert coding == smpplib.consts.SMPP_ENCODING_ISO10646
    assert len(parts) > 2
    for part in parts:
        esme.client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM, source_addr="Shop",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL, dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr="4915112345678", short_message=part, data_coding=coding,
            esm_class=esm_class, registered_delivery=True)
    assert esme.pump_until(lambda: len(esme.sent) == len(parts))
    ids = [p.message_id.decode() for p in esme.sent]
    assert len(set(ids)) == len(parts)
    assert all(int(i, 16) for i in ids)
    assert esme.pump_until(lambda: len(esme.received) >= len(parts))
    receipts = [r for r in esme.received if r.esm_class & 0x04]
    assert sorted(r.receipted_message_id.decode() for r in receipts) == sorted(ids)
    assert {r.message_state for r in receipts} == {smpplib.consts.SMPP_MESSAGE_STATE_DELIVERED}
    texts = [parse_receipt(r.short_message.decode("ascii")) for r in receipts]
    assert sorted(t.id for t in texts) == sorted(ids)
    assert {t.stat for t in texts} == {"DELIVRD"}
    ledgered = [i for i in _ledger(base_url) if i["to"] == "+4915112345678"]
    assert [i["body"] for i in ledgered] == [LONG_TEXT]
    esme.close()


def test_wrong_password_is_refused(sim: tuple[str, int]) -> None:
    _, port = sim
    esme = Esme(port)
    with pytest.raises(smpplib.exceptions.PDUError) as err:
        esme.client.bind_transceiver(system_id=SYSTEM_ID, password="nope")
    assert err.value.args[1] == smpplib.consts.SMPP_ESME_RINVPASWD
    with pytest.raises(smpplib.exceptions.PDUError) as err:
        esme.client.bind_transceiver(system_id="stranger", password=PASSWORD)
    assert err.value.args[1] == smpplib.consts.SMPP_ESME_RINVSYSID
    esme.client.disconnect()


def test_throttle_answers_esme_rthrottled(sim: tuple[str, int]) -> None:
    base_url, port = sim
    httpx.post(f"{base_url}/control", json={"smpp_throttle_per_s": 2}).raise_for_status()
    esme = _bound(port)
    try:
        for n in range(8):
            esme.client.send_message(source_addr="Shop", destination_addr="4915100000001",
                                     dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                                     short_message=f"burst {n}".encode())
        assert esme.pump_until(lambda: len(esme.sent) == 8)  # every submit_sm_resp, errors too
        statuses = [int(p.status) for p in esme.sent]
        assert smpplib.consts.SMPP_ESME_RTHROTTLED in statuses
        assert esme.errors == [s for s in statuses if s]
        assert statuses.count(0) >= 2  # the first ones of the second passed
    finally:
        httpx.post(f"{base_url}/control", json={"smpp_throttle_per_s": None}).raise_for_status()
        esme.close()


def test_mo_over_http_arrives_as_deliver_sm(sim: tuple[str, int]) -> None:
    base_url, port = sim
    esme = _bound(port)
    resp = httpx.post(f"{base_url}/smpp/mo",
                      json={"from": "+4915199999999", "to": "12345", "text": "STOP"})
    assert resp.status_code == 202
    assert esme.pump_until(lambda: any(not r.esm_class & 0x04 for r in esme.received))
    mo = next(r for r in esme.received if not r.esm_class & 0x04)
    assert (mo.source_addr.decode(), mo.destination_addr.decode(), mo.short_message) == (
        "4915199999999", "12345", b"STOP")
    esme.close()
