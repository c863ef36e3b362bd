"""The invariants checked at the end of every chaos run (issue 24, item 2; the design's
"Invariants"), read from PostgreSQL, the provider simulator's ledger and ``send.dlq``:

1. ``once_per_campaign``: no message key twice in the ledger, no recipient twice per run;
   ``sent_has_row``: no ledger entry without its message row, none whose row says it was
   never sent (queued, deferred, suppressed, expired); ``accepted_in_ledger``: every row
   recorded as accepted or delivered is in the ledger;
2. ``audience_adds_up``: per run, the rows' final states + holdouts + cut = the audience;
3. ``no_send_after_stop``: nothing claimed for sending after its number's STOP was recorded;
4. ``quiet_hours``: nothing in the recipient's quiet hours (the sender's own rule);
5. ``rate_limits``: segments per provider account in any 1 s of ledger time within its bucket;
6. ``visits_accounted``: every accepted visit stored once, or dead-lettered;
7. ``dead_letters_have_reasons``;
8. ``nothing_stuck_sending``: nothing in ``sending`` past the reconcile grace.

The rules are :mod:`hexcast.chaos.checks` (pure); this module reads and assembles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import httpx

from hexcast.chaos import checks
from hexcast.chaos.checks import LIVE_STATES, Checked, RunCounts, Sent, Violation
from hexcast.core.db import Conn, connect_pool
from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from sender.dlq import read_dead_letters
from sender.routing import provider_specs
from sender.tenant_rules import read_tenant_rules
from sender.text import segment_count

__all__ = ["Scope", "Verdict", "Violation", "check_invariants", "read_ledger"]

log = get_logger("hexcast.chaos")
_PAGE = 10_000
_BATCH = 50_000
_ALL_LETTERS = 100_000_000
_NEVER_SENT = ("queued", "deferred", "suppressed", "expired")


@dataclass(frozen=True, slots=True)
class Scope:
    database_url: str
    sim_url: str  # provider-sim base URL: GET /ledger?after=&limit= pages
    tenant_ids: tuple[int, ...]  # the workload's tenants (only their data is checked)
    run_ids: tuple[int, ...]  # campaign_runs ids of the workload's campaigns
    accepted_visits: tuple[str, ...]  # event_ids the api answered 202 for
    started_at: datetime  # UTC, workload start
    sending_grace_s: float = 120  # a message may sit in `sending` this long (reconcile grace)
    # How long a sender's decision (quiet hours, rate grant, claim vs the opt-outs) may precede
    # the provider's ledger timestamp of the message: a wait for the account's call slot, the call.
    clock_slack_s: float = 2.0


@dataclass(frozen=True, slots=True)
class Verdict:
    checked: dict[str, str]  # invariant id -> what was checked, with numbers
    violations: tuple[Violation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def markdown(self) -> str:
        """A table (invariant | result | numbers), then each violation with its examples."""
        broken = {v.invariant for v in self.violations}
        lines = ["| invariant | result | numbers |", "|---|---|---|"]
        lines += [f"| {name} | {'**broken**' if name in broken else 'held'} | {what} |"
                  for name, what in self.checked.items()]
        for v in self.violations:
            lines += ["", f"**{v.invariant}**: {v.detail}"]
            lines += [f"- `{e}`" for e in v.examples]
        return "\n".join(lines) + "\n"


def _verdict(results: Sequence[Checked]) -> Verdict:
    return Verdict(checked={r.invariant: r.checked for r in results},
                   violations=tuple(r.violation for r in results if r.violation is not None))


async def check_invariants(settings: Settings, scope: Scope) -> Verdict:
    """Every invariant over ``scope``'s data; the lead's world calls it once its run settled.

    Deferred messages keep being sent while this reads (their hours come): the rows recorded
    as accepted are read before the ledger, so each must be in it, and the ledger's entries
    have their rows (written before the provider call) whenever they are read."""
    pool = await connect_pool(scope.database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            accepted = [r["message_key"] for r in await conn.fetch(
                "SELECT message_key FROM messages WHERE tenant_id = ANY($1::bigint[])"
                " AND state IN ('accepted', 'delivered') AND created_at >= $2",
                list(scope.tenant_ids), scope.started_at)]
            ledger = await read_ledger(scope.sim_url)
            letters, lettered = await _letters(settings, scope)
            results = await _database_checks(conn, settings, scope, ledger, lettered)
            results.insert(2, checks.accepted_in_ledger(accepted, {i["client_ref"] for i in ledger}))
    finally:
        await pool.close()
    results.append(checks.letters_have_reasons(letters))
    verdict = _verdict(results)
    log.info("chaos_invariants", ok=verdict.ok, broken=[v.invariant for v in verdict.violations])
    return verdict


async def _database_checks(
    conn: Conn, settings: Settings, scope: Scope, ledger: list[dict[str, str]],
    lettered: set[str],
) -> list[Checked]:
    tenants = list(scope.tenant_ids)
    sent, never_sent = await _joined(conn, ledger, tenants)
    ours = [s for s in sent if s.tenant_id in scope.tenant_ids]
    results = [checks.once_per_campaign(sent), checks.sent_has_row(sent, never_sent),
               checks.audience_adds_up(await _runs(conn, list(scope.run_ids)))]
    opted_out = {(r["tenant_id"], r["phone"]): r["opted_out_at"] for r in await conn.fetch(
        "SELECT tenant_id, phone, opted_out_at FROM opt_outs WHERE tenant_id = ANY($1::bigint[])",
        tenants)}
    candidates = [s.key for s in ours if (s.tenant_id, s.phone) in opted_out]
    results.append(checks.after_stop(ours, opted_out, await _claimed(conn, candidates), scope.clock_slack_s))
    results.append(await _quiet(conn, settings, ours, scope))
    results.append(checks.rate_limits(sent, _limits(settings), scope.clock_slack_s))
    stored = {r["event_id"]: r["n"] for r in await conn.fetch(
        "SELECT event_id, count(*) AS n FROM visits WHERE tenant_id = ANY($1::bigint[])"
        " AND event_id = ANY($2::text[]) GROUP BY 1", tenants, list(scope.accepted_visits))}
    results.append(checks.visits_accounted(scope.accepted_visits, stored, lettered))
    sending = await conn.fetch(
        "SELECT message_key, updated_at FROM messages WHERE pending AND state = 'sending'"
        " AND tenant_id = ANY($1::bigint[])", tenants)
    now: datetime = await conn.fetchval("SELECT now()")
    results.append(checks.nothing_stuck([(r["message_key"], r["updated_at"]) for r in sending], now,
                                 scope.sending_grace_s))
    return results


async def read_ledger(sim_url: str) -> list[dict[str, str]]:
    """Every entry of the simulator's ledger, oldest first, read page by page."""
    items: list[dict[str, str]] = []
    async with httpx.AsyncClient(base_url=sim_url, timeout=60) as client:
        while True:
            response = await client.get("/ledger", params={"after": len(items), "limit": _PAGE})
            response.raise_for_status()
            page = response.json()
            items += page["items"]
            if not page["items"] or len(items) >= page["total"]:
                return items


async def _joined(
    conn: Conn, ledger: list[dict[str, str]], tenants: list[int]
) -> tuple[list[Sent], dict[str, str]]:
    """The ledger entries with their message rows (any tenant: an entry with none is an
    orphan), and the scope's rows that say their message never reached a provider."""
    rows: dict[str, asyncpg.Record] = {}
    keys = [i["client_ref"] for i in ledger]
    for start in range(0, len(keys), _BATCH):
        rows.update((r["message_key"], r) for r in await conn.fetch(
            "SELECT message_key, tenant_id, lane::text AS lane, campaign_run_id, provider,"
            " confirmation, state::text AS state FROM messages"
            " WHERE message_key = ANY($1::text[])", keys[start : start + _BATCH]))
    sent = [_sent(i, rows.get(i["client_ref"])) for i in ledger]
    never = {k: r["state"] for k, r in rows.items()
             if r["state"] in _NEVER_SENT and r["tenant_id"] in tenants}
    return sent, never


def _sent(item: dict[str, str], row: asyncpg.Record | None) -> Sent:
    at = datetime.fromisoformat(item["accepted_at"])
    base = Sent(key=item["client_ref"], phone=item["to"], accepted_at=at,
                segments=segment_count(item["body"]))
    if row is None:
        return base
    return Sent(key=base.key, phone=base.phone, accepted_at=at, segments=base.segments,
                tenant_id=row["tenant_id"], lane=row["lane"], run_id=row["campaign_run_id"],
                provider=row["provider"], confirmation=row["confirmation"])


async def _runs(conn: Conn, run_ids: list[int]) -> list[RunCounts]:
    waves = await conn.fetch(
        "SELECT r.id, COALESCE(sum(w.released), 0) AS released,"
        " COALESCE(sum(w.held_out), 0) AS held_out, COALESCE(sum(w.expired), 0) AS cut"
        " FROM campaign_runs r LEFT JOIN campaign_waves w ON w.run_id = r.id"
        " WHERE r.id = ANY($1::bigint[]) GROUP BY r.id", run_ids)
    states: dict[int, dict[str, int]] = {r: {} for r in run_ids}
    redeferred: dict[int, int] = dict.fromkeys(run_ids, 0)
    for r in await conn.fetch(
            "SELECT campaign_run_id AS run, state::text AS state, count(*) AS n,"
            " count(*) FILTER (WHERE not_before IS NOT NULL) AS again FROM messages"
            " WHERE campaign_run_id = ANY($1::bigint[]) GROUP BY 1, 2", run_ids):
        states[r["run"]][r["state"]] = r["n"]
        if r["state"] in LIVE_STATES:
            redeferred[r["run"]] += r["again"]
    found = {w["id"]: w for w in waves}
    return [RunCounts(run_id=r, released=int(found[r]["released"]) if r in found else 0,
                      held_out=int(found[r]["held_out"]) if r in found else 0,
                      cut=int(found[r]["cut"]) if r in found else 0, states=states[r],
                      redeferred=redeferred[r])
            for r in run_ids]


async def _claimed(conn: Conn, keys: list[str]) -> dict[str, datetime]:
    """Each key's last move to ``sending`` (its claim before the provider call)."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT m.message_key, max(e.at) AS at FROM messages m CROSS JOIN LATERAL ("
        " SELECT s.at FROM message_statement_events s WHERE s.span @> m.id"
        " AND m.id = ANY(s.message_ids) AND s.to_state = 'sending'"
        " UNION ALL SELECT e.at FROM message_events e WHERE e.message_id = m.id"
        " AND e.to_state = 'sending') e"
        " WHERE m.message_key = ANY($1::text[]) GROUP BY 1", keys)
    return {r["message_key"]: r["at"] for r in rows}


async def _quiet(conn: Conn, settings: Settings, sent: list[Sent],
                 scope: Scope) -> Checked:
    if not settings.sender_quiet_hours:
        return Checked("quiet_hours", "off in the settings (sender_quiet_hours): not checked")
    zones = {(r["tenant_id"], r["phone"]): r["time_zone"] for r in await conn.fetch(
        "SELECT tenant_id, phone, time_zone FROM recipients WHERE tenant_id = ANY($1::bigint[])"
        " AND phone = ANY($2::text[]) AND time_zone IS NOT NULL",
        list(scope.tenant_ids), list({s.phone for s in sent}))}
    rules = await read_tenant_rules(conn, scope.tenant_ids)
    return checks.quiet_hours(sent, zones, {t: r.window for t, r in rules.items()}, scope.clock_slack_s)


def _limits(settings: Settings) -> dict[str, tuple[float, float]]:
    """Each route's account bucket (rate/s, burst), as ``sender.routing`` builds it."""
    limits = {}
    for spec in provider_specs(settings):
        rate = spec.rate_per_s or settings.provider_rate_per_s
        limits[spec.name] = (rate, max(settings.provider_burst if spec.rate_per_s is None else rate, 1.0))
    return limits


async def _letters(settings: Settings, scope: Scope) -> tuple[list[tuple[int, str]], set[str]]:
    """The dead letters (offset, reason) of the workload's tenants (or of none a letter names)
    since it started, and the visit event ids dead-lettered from ``visits`` among them."""
    visits_topic = settings.topic("visits")
    ours: list[tuple[int, str]] = []
    lettered: set[str] = set()
    for offset, letter in await read_dead_letters(settings, limit=_ALL_LETTERS):
        tenants, events = checks.letter_facts(letter.payload)
        if letter.at < scope.started_at or (tenants and not tenants & set(scope.tenant_ids)):
            continue
        ours.append((offset, letter.reason))
        if letter.source_topic == visits_topic:
            lettered |= events
    return ours, lettered
