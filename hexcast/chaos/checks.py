"""The chaos invariants as pure rules over what :mod:`hexcast.chaos.invariants` read: no I/O.

Each rule returns a :class:`Checked`: what it looked at, with numbers, and the violation if any.
Times are aware datetimes (UTC); ``slack_s`` is how long a sender's decision (quiet hours, its
rate grant, its claim against the opt-outs) may precede the provider's ledger timestamp.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sender.quiet import Window, is_allowed, narrowed, window_for, zones_for

__all__ = ["LIVE_STATES", "Checked", "RunCounts", "Sent", "Violation", "after_stop",
           "audience_adds_up", "busiest_window", "in_quiet_hours", "letter_facts", "letters_have_reasons",
           "nothing_stuck", "once_per_campaign", "quiet_hours", "rate_limits", "sent_has_row",
           "visits_accounted"]

_EXAMPLES = 5
#: Message states that mean "not settled yet": a run whose rows sit here has not added up.
LIVE_STATES = ("queued", "sending")


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str  # short id, e.g. "once_per_campaign"
    detail: str  # human sentence with counts
    examples: tuple[str, ...] = ()  # up to 5 offending keys/phones


@dataclass(frozen=True, slots=True)
class Checked:
    """One invariant's result: what was checked (with numbers) and its violation, if any."""

    invariant: str
    checked: str
    violation: Violation | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """A provider ledger entry joined with its message row (``tenant_id`` None: no row)."""

    key: str  # client reference = message key
    phone: str
    accepted_at: datetime
    segments: int = 1
    tenant_id: int | None = None
    lane: str = ""
    run_id: int | None = None
    provider: str | None = None
    confirmation: bool = False


@dataclass(frozen=True, slots=True)
class RunCounts:
    """A campaign run's audience as its waves recorded it, and its message rows per state."""

    run_id: int
    released: int
    held_out: int
    cut: int  # not released: past the wave's deadline (counted as expired)
    states: Mapping[str, int] = field(default_factory=dict)
    redeferred: int = 0  # queued or sending again after a deferral: its hour came, in flight

    @property
    def audience(self) -> int:
        return self.released + self.held_out + self.cut


def _failed(invariant: str, checked: str, detail: str, examples: Iterable[object]) -> Checked:
    shown = tuple(str(e) for e in list(examples)[:_EXAMPLES])
    return Checked(invariant, checked, Violation(invariant, detail, shown))


def _result(invariant: str, checked: str, bad: Sequence[object], detail: str) -> Checked:
    return _failed(invariant, checked, detail, bad) if bad else Checked(invariant, checked)


def once_per_campaign(sent: Sequence[Sent]) -> Checked:
    """No message key twice in the ledger, and no recipient twice for one campaign run."""
    keys = Counter(s.key for s in sent)
    twice_keys = [k for k, n in keys.items() if n > 1]
    runs = Counter((s.run_id, s.phone) for s in sent if s.run_id is not None)
    twice = [f"run {r} {p}" for (r, p), n in runs.items() if n > 1]
    checked = (f"{len(sent)} ledger entries, {len(runs)} campaign recipients;"
               f" {len(twice_keys)} keys and {len(twice)} recipients twice")
    return _result("once_per_campaign", checked, twice_keys + twice,
                   f"{len(twice_keys)} message keys and {len(twice)} run recipients reached the"
                   " provider more than once")


def sent_has_row(sent: Sequence[Sent], never_sent: Mapping[str, str]) -> Checked:
    """Every ledger entry has its message row (``tenant_id`` set), and no row says its message
    never reached a provider (``never_sent``: key → such a state, e.g. suppressed)."""
    orphans = [s.key for s in sent if s.tenant_id is None]
    denied = [f"{k} ({state})" for k, state in never_sent.items()]
    checked = f"{len(sent)} ledger entries, {len(orphans)} without a row, {len(denied)} denied by it"
    return _result("sent_has_row", checked, orphans + denied,
                   f"{len(orphans)} ledger entries have no message row and {len(denied)} rows"
                   " say their message never reached a provider")


def accepted_in_ledger(accepted: Sequence[str], ledgered: Collection[str]) -> Checked:
    """Every message the sender recorded as taken by the provider (accepted or delivered) is in
    the provider's ledger: no acceptance recorded for a call that did not happen, and no ledger
    the provider lost (the simulator keeps it across restarts)."""
    missing = [k for k in accepted if k not in ledgered]
    return _result("accepted_in_ledger", f"{len(accepted)} accepted or delivered rows,"
                   f" {len(missing)} missing from the ledger", missing,
                   f"{len(missing)} messages recorded as accepted are not in the provider's ledger")


def audience_adds_up(runs: Sequence[RunCounts]) -> Checked:
    """Per run: accepted + delivered + suppressed + failed + expired + deferred + unknown rows,
    plus holdouts and recipients cut at a deadline, equal the audience (released + held out +
    cut). Rows still ``queued``/``sending`` and missing rows are what breaks it, except rows a
    deferral released when their hour came (``redeferred``): the campaign goes on sending its
    deferred messages as zones wake up, so they count as deferred, in flight."""
    bad, unknown, audience, again = [], 0, 0, 0
    for run in runs:
        rows = sum(run.states.values())
        live = sum(run.states.get(s, 0) for s in LIVE_STATES) - run.redeferred
        unknown += run.states.get("unknown", 0)
        audience += run.audience
        again += run.redeferred
        if rows != run.released or live:
            bad.append(f"run {run.run_id}: audience {run.audience}, released {run.released},"
                       f" rows {rows}, unsettled {live}")
    checked = (f"{len(runs)} runs, audience {audience}, {unknown} unknown, {again} deferred and"
               f" released (in flight), {len(bad)} not adding up")
    return _result("audience_adds_up", checked, bad,
                   f"{len(bad)} of {len(runs)} runs do not add up to their audience")


def after_stop(
    sent: Sequence[Sent], opted_out: Mapping[tuple[int, str], datetime],
    claimed: Mapping[str, datetime], slack_s: float,
) -> Checked:
    """No message to a number its tenant recorded a STOP for, claimed (``claimed``: the key's
    move to ``sending``, else its ledger time) more than ``slack_s`` after the STOP.
    Confirmations (the one answer to a STOP) are exempt."""
    slack = timedelta(seconds=slack_s)
    stopped, bad = 0, []
    for s in sent:
        stop = None if s.tenant_id is None or s.confirmation \
            else opted_out.get((s.tenant_id, s.phone))
        if stop is not None:
            stopped += 1
            if claimed.get(s.key, s.accepted_at) > stop + slack:
                bad.append(s.key)
    checked = f"{len(opted_out)} opt-outs, {stopped} sends to their numbers, {len(bad)} after"
    return _result("no_send_after_stop", checked, bad,
                   f"{len(bad)} messages were sent after their number's STOP was recorded")


def in_quiet_hours(at: datetime, phone: str, profile_zone: str | None,
                   tenant_window: Window | None) -> bool:
    """Whether ``at`` falls in the recipient's quiet hours: the sender's own rule
    (``sender.quiet``: every zone of the number and profile, the legal window narrowed by the
    tenant's)."""
    window = narrowed(window_for(phone), tenant_window)
    return window is None or not is_allowed(at, zones_for(phone, profile_zone=profile_zone), window)


def quiet_hours(
    sent: Sequence[Sent], zones: Mapping[tuple[int, str], str],
    windows: Mapping[int, Window | None], slack_s: float,
) -> Checked:
    """No marketing or transactional message reached the provider in its recipient's quiet
    hours: a violation is quiet both at its ledger time and ``slack_s`` before (when its sender
    decided). Exact while ``slack_s`` is shorter than any allowed window. The otp lane and
    confirmations are exempt, as in the sender."""
    slack = timedelta(seconds=slack_s)
    held = [(s, s.tenant_id) for s in sent
            if s.tenant_id is not None and s.lane != "otp" and not s.confirmation]
    bad = []
    for s, tenant in held:
        zone, window = zones.get((tenant, s.phone)), windows.get(tenant)
        if all(in_quiet_hours(at, s.phone, zone, window)
               for at in (s.accepted_at, s.accepted_at - slack)):
            bad.append(f"{s.key} {s.phone} {s.accepted_at.isoformat()}")
    checked = f"{len(held)} messages subject to quiet hours, {len(bad)} inside them"
    return _result("quiet_hours", checked, bad,
                   f"{len(bad)} messages reached the provider in their recipient's quiet hours")


def busiest_window(points: Sequence[tuple[datetime, int]], width_s: float = 1.0
                   ) -> tuple[datetime | None, int]:
    """The start of the busiest half-open window ``[t, t + width_s)`` and its total weight:
    every busiest window can be slid right to start at a point, so the points are the starts."""
    ordered = sorted(points)
    width = timedelta(seconds=width_s)
    best: tuple[datetime | None, int] = (None, 0)
    total, end = 0, 0
    for start, (at, _) in enumerate(ordered):
        while end < len(ordered) and ordered[end][0] < at + width:
            total += ordered[end][1]
            end += 1
        if total > best[1]:
            best = (at, total)
        total -= ordered[start][1]
    return best


def rate_limits(
    sent: Sequence[Sent], limits: Mapping[str, tuple[float, float]], slack_s: float
) -> Checked:
    """Segments per provider account (``limits``: route → (rate/s, burst), the account bucket
    every lane takes from) in any 1 s window of ledger time stay within ``burst + rate × (1 +
    slack_s)``: a token bucket grants at most ``burst + rate × T`` in any T seconds of grant
    time, and ledger times trail their grants by 0 to ``slack_s`` (a wait for the account's call
    slot, the call), so grants landing in 1 s of ledger time span at most 1 + ``slack_s`` s.
    A Redis restart refills a bucket: one more burst, within the slack at the defaults."""
    by_route: dict[str, list[tuple[datetime, int]]] = {}
    for s in sent:
        if s.provider is not None:
            by_route.setdefault(s.provider, []).append((s.accepted_at, s.segments))
    bad, peaks, unknown = [], [], sorted(set(by_route) - set(limits))
    for route in sorted(set(by_route) & set(limits)):
        rate, burst = limits[route]
        at, peak = busiest_window(by_route[route])
        allowed = burst + rate * (1 + slack_s)
        peaks.append(f"{route} peak {peak}/{allowed:g}")
        if peak > allowed:
            bad.append(f"{route}: {peak} segments in 1 s from {at.isoformat() if at else '?'},"
                       f" allowed {allowed:g}")
    checked = "; ".join(peaks) or "no routed sends"
    if unknown:
        checked += f"; routes not configured, not checked: {', '.join(unknown)}"
    return _result("rate_limits", checked, bad, f"{len(bad)} accounts went over their rate")


def visits_accounted(
    accepted: Sequence[str], stored: Mapping[str, int], lettered: Iterable[str]
) -> Checked:
    """Every accepted visit event is stored (``stored``: event id → rows) or dead-lettered, and
    none is stored twice."""
    letters = set(lettered)
    lost = [e for e in accepted if not stored.get(e) and e not in letters]
    twice = [e for e in accepted if stored.get(e, 0) > 1]
    kept = sum(1 for e in accepted if stored.get(e))
    checked = (f"{len(accepted)} accepted, {kept} stored, {len(accepted) - kept - len(lost)}"
               f" dead-lettered, {len(lost)} lost, {len(twice)} twice")
    return _result("visits_accounted", checked, lost + twice,
                   f"{len(lost)} accepted visits are neither stored nor dead-lettered,"
                   f" {len(twice)} are stored twice")


def letters_have_reasons(letters: Sequence[tuple[int, str]]) -> Checked:
    """Every dead letter (offset, reason) of the workload has a non-blank reason."""
    bad = [f"offset {o}" for o, reason in letters if not reason.strip()]
    reasons = Counter(reason.strip()[:80] for _, reason in letters if reason.strip())
    named = "; ".join(f"{n} × {reason}" for reason, n in reasons.most_common(5))
    return _result("dead_letters_have_reasons", f"{len(letters)} dead letters, {len(bad)} without"
                   f" a reason{': ' + named if named else ''}", bad,
                   f"{len(bad)} dead letters have no reason")


def nothing_stuck(sending: Sequence[tuple[str, datetime]], now: datetime, grace_s: float) -> Checked:
    """No message (key, last change) left in ``sending`` longer than the reconcile grace."""
    limit = now - timedelta(seconds=grace_s)
    bad = [key for key, at in sending if at < limit]
    checked = f"{len(sending)} in sending, {len(bad)} older than {grace_s:g} s"
    return _result("nothing_stuck_sending", checked, bad,
                   f"{len(bad)} messages are still in sending after the reconcile grace")


def letter_facts(payload: str) -> tuple[set[int], set[str]]:
    """The tenants and visit event ids a dead letter's payload names (its record's
    ``tenant_id``, or its items' or events'); nothing for a payload that is not JSON."""
    try:
        record = json.loads(payload)
    except ValueError:
        return set(), set()
    parts = [record] if isinstance(record, dict) else []
    for name in ("items", "events"):
        found = record.get(name) if isinstance(record, dict) else None
        parts += [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []
    tenants = {p["tenant_id"] for p in parts if isinstance(p.get("tenant_id"), int)}
    events = {p["event_id"] for p in parts if isinstance(p.get("event_id"), str)}
    return tenants, events
