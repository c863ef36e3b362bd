"""The SMPP benchmark's pure parts: its variants, the route and settings it runs, the flood's
PDUs and the table (bench/smpp.py, bench/smsc_flood.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.providers import DialectResult, markdown, rows
from bench.smpp import BINDS, LAYOUT, LIMIT, WINDOWS, smpp_route, smpp_settings, variants
from bench.smsc_flood import CLIENT, destination, submits
from hexcast.core.smpp.pdu import Command, SubmitSm, decode
from hexcast.testing import make_settings
from sender.models import ProviderSpec


def _result(name: str, round_no: int, rate: float, **extra: object) -> DialectResult:
    found = DialectResult(name, round_no, 1000, accepted=1000, rate=rate, requests=1000,
                          states={"accepted": 1000},
                          cpu_s={"sender-bulk-0": 0.3, "provider-sim": 0.2, "postgres": 1.0})
    for key, value in extra.items():
        setattr(found, key, value)
    return found


def test_variants_are_the_baseline_every_binds_window_pair_and_the_limit() -> None:
    found = variants()
    assert found[0].name == "generic"
    assert not found[0].smpp
    assert found[-1].name == LIMIT
    assert not found[-1].smpp
    routes = found[1:-1]
    assert all(v.smpp for v in routes)
    assert sorted((v.binds, v.window) for v in routes) == sorted((b, w) for b in BINDS for w in WINDOWS)
    assert len({v.name for v in found}) == len(found) == len(BINDS) * len(WINDOWS) + 2


def test_the_smpp_route_is_a_valid_route_to_the_smsc_that_never_paces_the_run() -> None:
    spec = ProviderSpec.model_validate(smpp_route(2775, 4, 50))
    assert (spec.kind, spec.url, spec.account, spec.token.get_secret_value()) == (
        "smpp", "smpp://127.0.0.1:2775", "hexcast", "secret")
    assert spec.smpp is not None
    assert (spec.smpp.binds, spec.smpp.window) == (4, 50)
    assert spec.rate_per_s is not None
    assert spec.rate_per_s >= 100_000


def test_smpp_settings_route_the_senders_to_the_smsc_alone_with_receipts_held_or_not() -> None:
    base = make_settings("kafka://127.0.0.1:9092", "postgresql://x/y", provider_url="http://127.0.0.1:8200",
                         api_public_url="http://127.0.0.1:8300")
    variant = variants()[1]
    held = smpp_settings(base, variant, 2775, receipts=False)
    [spec] = [ProviderSpec.model_validate(s) for s in json.loads(held.sender_providers)]
    assert spec.url == "smpp://127.0.0.1:2775"
    assert held.provider_name == spec.name
    assert spec.smpp is not None
    assert (spec.smpp.binds, spec.smpp.window) == (variant.binds, variant.window)
    assert held.sim_dlr_delay_s > 86_400  # the SMSC's deliver_sm come after the run
    assert smpp_settings(base, variant, 2775, receipts=True).sim_dlr_delay_s < 1


@given(st.lists(st.integers(0, 9_999_999), min_size=1, max_size=50, unique=True))
def test_flood_destinations_are_distinct_international_numbers(ns: list[int]) -> None:
    numbers = [destination(n) for n in ns]
    assert len(set(numbers)) == len(numbers)
    assert all(n.isdigit() and n.startswith("1555") and len(n) == 11 for n in numbers)


def test_a_destination_past_the_range_is_refused() -> None:
    with pytest.raises(ValueError, match="0..9,999,999"):
        destination(10_000_000)


def test_flood_submits_are_numbered_after_the_bind_and_ask_for_receipts_only_when_told() -> None:
    pdus = [decode(frame) for frame in submits(3)]
    assert [p.sequence for p in pdus] == [2, 3, 4]
    assert all(p.command is Command.SUBMIT_SM and isinstance(p.body, SubmitSm) for p in pdus)
    bodies = [p.body for p in pdus if isinstance(p.body, SubmitSm)]
    assert {b.registered_delivery for b in bodies} == {0}
    assert len({b.destination_addr for b in bodies}) == 3
    [asked] = [decode(frame).body for frame in submits(1, receipts=True)]
    assert isinstance(asked, SubmitSm)
    assert asked.registered_delivery == 1


def test_rows_compare_with_generic_and_count_the_limit_client_as_its_sender() -> None:
    results = [_result("generic", 0, 2000.0, requests=4, cpu_s={"sender-bulk-0": 0.1, "provider-sim": 0.02}),
               _result("smpp 1×10", 0, 1000.0),
               _result("smpp 1×10", 1, 1500.0, duplicates=1),
               _result("generic", 1, 2000.0, requests=4),
               _result(LIMIT, 0, 5000.0, cpu_s={CLIENT: 0.07, "provider-sim": 0.14},
                       states={"ledgered": 1000})]
    found = {row[0]: row for row in rows(results, LAYOUT)}
    assert found["generic"][1:4] == ["2,000 (2,000–2,000)", "100% (100%–100%)", "4 (4–4)"]
    assert found["smpp 1×10"][1:4] == ["1,250 (1,000–1,500)", "62% (50%–75%)", "1,000 (1,000–1,000)"]
    assert found["smpp 1×10"][4:6] == ["300 (300–300)", "200 (200–200)"]  # µs per recipient
    assert found["smpp 1×10"][7].startswith("NO: accepted 1,000, dup 1")
    assert found[LIMIT][2:7] == ["250%", "1,000", "70", "140", "210 · 0% busy"]
    assert found[LIMIT][7] == "yes"
    assert markdown(results, LAYOUT).count("\n") == 1 + len(found)
    assert markdown(results, LAYOUT).startswith("| route | recipients/s | of generic | requests")
