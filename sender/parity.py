"""Parity of a tenant's dry run with its legacy platform: which numbers both sent to, which only
the legacy platform did (and why hexcast did not: its recorded decision), and which only hexcast
would have. Pure: reading the legacy CSV and comparing, no I/O.

The legacy log is a CSV with a header and the columns ``phone`` (E.164), ``time`` (ISO 8601 with
an offset) and ``status``; a row whose status is ``skipped``, ``suppressed`` or ``not_sent`` was
not sent, any other status was. A number counts as sent by hexcast when one of its messages was
handed to a route (dry-run routes included): ``sending``, ``accepted``, ``delivered``,
``unknown``, or ``failed`` with a provider's refusal.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Decision", "LegacySend", "ParityReport", "compare", "read_legacy"]

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_NOT_SENT = frozenset({"skipped", "suppressed", "not_sent"})
_SENT_STATES = frozenset({"sending", "accepted", "delivered", "unknown"})


@dataclass(frozen=True, slots=True)
class LegacySend:
    phone: str
    at: datetime
    sent: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """One hexcast message of the tenant: its number, state and the reason recorded."""

    phone: str
    state: str
    reason: str | None
    at: datetime

    @property
    def sent(self) -> bool:
        refused = self.state == "failed" and (self.reason or "").startswith("provider rejected")
        return self.state in _SENT_STATES or refused

    @property
    def why(self) -> str:
        """The decision in a few words: ``suppressed: opted out``, ``deferred: quiet hours``."""
        reason = (self.reason or "").split(" until ")[0]
        return f"{self.state}: {reason}" if reason else self.state


@dataclass
class ParityReport:
    both: list[str] = field(default_factory=list)
    legacy_only: dict[str, list[str]] = field(default_factory=dict)  # hexcast's why → numbers
    hexcast_only: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"both sent: {len(self.both)}",
               f"legacy only: {sum(len(v) for v in self.legacy_only.values())}"]
        out += [f"  {why}: {len(numbers)}" for why, numbers in sorted(self.legacy_only.items())]
        out.append(f"hexcast only: {len(self.hexcast_only)}")
        return out


def read_legacy(text: str) -> list[LegacySend]:
    """The rows of a legacy send log; a ``ValueError`` names the line and the problem."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"phone", "time", "status"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(f"line 1: missing column(s) {', '.join(sorted(missing))}")
    rows: list[LegacySend] = []
    for line, row in enumerate(reader, start=2):
        phone, when, status = (row["phone"] or "").strip(), row["time"] or "", row["status"] or ""
        if not _E164.match(phone):
            raise ValueError(f"line {line}: phone {phone[:32]!r} is not E.164")
        try:
            at = datetime.fromisoformat(when.strip())
        except ValueError:
            raise ValueError(f"line {line}: time {when[:40]!r} is not ISO 8601") from None
        if at.tzinfo is None:
            raise ValueError(f"line {line}: time {when[:40]!r} has no UTC offset")
        rows.append(LegacySend(phone, at, status.strip().lower() not in _NOT_SENT))
    return rows


def compare(legacy: Sequence[LegacySend], decisions: Sequence[Decision]) -> ParityReport:
    """Number by number: sent by both, by the legacy platform only (with hexcast's latest
    decision for the number, or ``no message`` when hexcast's audience did not hold it), or by
    hexcast only."""
    legacy_sent = {r.phone for r in legacy if r.sent}
    latest: dict[str, Decision] = {}
    for d in sorted(decisions, key=lambda d: d.at):
        latest[d.phone] = d
    ours = {d.phone for d in decisions if d.sent}
    report = ParityReport(both=sorted(legacy_sent & ours), hexcast_only=sorted(ours - legacy_sent))
    why: dict[str, list[str]] = {}
    for phone in sorted(legacy_sent - ours):
        decided = latest.get(phone)
        why.setdefault(decided.why if decided else "no message", []).append(phone)
    report.legacy_only = why
    return report

