"""bench/outbox.py's pure helpers: the latency cell and the table's rows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.otp import OtpReport
from bench.outbox import BARE, HEADER, SUBSCRIBED, OutboxResult, latency, markdown, rows


def _run(variant: str, round_no: int, rate: float, *, outbox: int = 0, tx: OtpReport | None = None,
         accepted: int = 100) -> OutboxResult:
    return OutboxResult(variant, round_no, 100, accepted=accepted, rate=rate, outbox_rows=outbox,
                        events_at_end=outbox // 2, events=outbox, drain_s=4.0, transactional=tx,
                        states={"accepted": accepted}, cpu_s={"sender-bulk-0": 0.01, "postgres": 0.02,
                                                              "postgres-bg": 0.01, "webhooks": 0.005})


def test_latency_takes_medians_of_percentiles_the_worst_max_and_sums_the_counts() -> None:
    reports: list[OtpReport | None] = [OtpReport(10, 9, 100.0, 900.0, 1200.0),
                                       OtpReport(20, 20, 300.0, 500.0, 800.0), None]
    assert latency(reports) == "200 / 700 / 1,200 (29 of 30)"


def test_latency_without_a_ledgered_message_is_not_available() -> None:
    assert latency([None, OtpReport(5, 0, 0.0, 0.0, 0.0)]) == "n/a"


def test_rows_compare_each_round_with_the_tenant_without_endpoint() -> None:
    tx = OtpReport(4, 4, 50.0, 80.0, 90.0)
    results = [_run(BARE, 0, 1000.0, tx=tx), _run(SUBSCRIBED, 0, 800.0, outbox=200, tx=tx),
               _run(SUBSCRIBED, 1, 450.0, outbox=200), _run(BARE, 1, 500.0)]
    bare, subscribed = rows(results)
    assert bare[:4] == [BARE, "750 (500–1,000)", "100% (100%–100%)", "0 (0–0)"]
    assert subscribed[:3] == [SUBSCRIBED, "625 (450–800)", "85% (80%–90%)"]
    assert subscribed[4].endswith("200 in 4 s; 200 in 4 s")
    assert subscribed[6] == "300 (300–300)"  # PostgreSQL: client backends and background together
    assert subscribed[9:] == ["50 / 80 / 90 (4 of 4)", "n/a", "yes"]


def test_a_run_short_of_its_audience_is_not_exactly_once() -> None:
    (row,) = rows([_run(BARE, 0, 10.0, accepted=99)])
    assert [row[2], row[-1]] == ["100%", "NO"]


@given(st.lists(st.floats(min_value=1.0, max_value=1e5), min_size=1, max_size=6))
def test_markdown_has_a_row_per_tenant_and_every_column(rates: list[float]) -> None:
    results = [_run(BARE if n % 2 else SUBSCRIBED, n // 2, rate) for n, rate in enumerate(rates)]
    lines = markdown(results).splitlines()
    assert len(lines) == 2 + len({r.dialect for r in results})
    assert all(line.count("|") == len(HEADER) + 1 for line in lines)
