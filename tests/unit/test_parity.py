"""The parity report's pure parts: reading a legacy send log, comparing it with decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sender.parity import Decision, compare, read_legacy

AT = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)


def test_rows_and_their_sent_flag() -> None:
    rows = read_legacy("phone,time,status\n+13125550100,2026-11-27T18:00:00-05:00,delivered\n"
                       "+13125550101,2026-11-27T18:00:00-05:00,Skipped\n")
    assert [(r.phone, r.at, r.sent) for r in rows] == [
        ("+13125550100", AT, True), ("+13125550101", AT, False)]


@pytest.mark.parametrize(("text", "error"), [
    ("phone,status\n", "line 1: missing column(s) time"),
    ("phone,time,status\n13125550100,2026-11-27T18:00:00Z,sent\n", "line 2: phone '13125550100'"),
    ("phone,time,status\n+13125550100,yesterday,sent\n", "line 2: time 'yesterday' is not ISO"),
    ("phone,time,status\n+13125550100,2026-11-27T18:00:00,sent\n", "line 2: time "),
])
def test_a_bad_row_names_its_line(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        read_legacy(text)


def test_compare_counts_each_number_once_with_hexcasts_latest_reason() -> None:
    legacy = read_legacy("phone,time,status\n" + "".join(
        f"+1312555010{n},2026-11-27T23:00:00Z,sent\n" for n in range(5)))
    decisions = [
        Decision("+13125550100", "accepted", None, AT),
        Decision("+13125550101", "deferred", "quiet hours until 2026-11-28T14:00Z", AT),
        Decision("+13125550102", "suppressed", "opted out", AT),
        Decision("+13125550103", "failed", "provider rejected: 21211: invalid", AT),  # attempted
        Decision("+13125550109", "delivered", None, AT),
    ]
    report = compare(legacy, decisions)
    assert report.both == ["+13125550100", "+13125550103"]
    assert report.legacy_only == {"deferred: quiet hours": ["+13125550101"],
                                  "no message": ["+13125550104"],
                                  "suppressed: opted out": ["+13125550102"]}
    assert report.hexcast_only == ["+13125550109"]
