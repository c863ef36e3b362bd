"""The sender's work on one send batch: dedupe, expire, rate-limit, call, record.

Ordering guarantees (docs/DESIGN.md, "Sending: message identity and the message log"):
- a row moves ``queued → sending`` in PostgreSQL (committed, with the provider's name) before
  the provider call, with the message key as the provider's client reference;
- a row found in ``sending`` (a crash, a redelivery, an ambiguous timeout) is reconciled by
  that provider's lookup and resent only when the provider never saw it; a provider without
  lookup leaves it ``unknown``, never resent blindly;
- an answer that certainly was not processed (429, HTTP 5xx, refused connection) puts the rows
  back to ``queued`` and they fail over to the next provider of the lane;
- Redis or PostgreSQL outages pause the work (fail closed) instead of dropping it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.core.logging import get_logger
from sender import expiry, metrics
from sender.countries import country_of
from sender.grants import Grants
from sender.holds import Holds
from sender.journal import Store, until_up, with_state
from sender.models import Lane, MessageState, SendBatch, SendRequest
from sender.outcome import Outcome
from sender.providers import ErrorClass, Outgoing, error_table
from sender.reconcile import Reconciler, backoff
from sender.repo import MessageRow, Screened
from sender.routing import Route, Router
from sender.run_gate import RunGate
from sender.shortener import LinkShortener
from sender.tenant_senders import TenantSenders
from sender.text import segment_count

__all__ = ["Dispatcher", "Policy"]

log = get_logger("hexcast.sender")
Q, S = MessageState.QUEUED, MessageState.SENDING
_NOTHING_SCREENED = Screened(zones={}, ids=set(), blocked=set())


@dataclass(frozen=True, slots=True)
class Policy:
    """How one lane sends: attempts per message, the grace before a ``sending`` row counts as
    orphaned, the geo offer TTL, how close to its expiry (a TTL or a campaign's deadline) a
    message may still be handed to a provider, and how many slices of a bulk record go side
    by side."""

    max_attempts: int = 3
    reconcile_grace_s: float = 300.0
    geo_ttl_s: float = 1800.0
    expiry_margin_s: float = 1.0
    bulk_parts: int = 1
    fault_kill_after_calls: int = 0  # TEST ONLY: die between acceptance and commit


class Dispatcher:
    """Sends the rows of one lane: reconcile, expire, hold, gate, grant, call, record.

    Collaborators: the message ``store``, the ``router`` (accounts, breakers, limits), and the
    optional steps ``holds`` (quiet hours, caps), ``runs`` (campaign run control and pace),
    ``links`` (tracked links) and ``senders`` (tenants' own sender ids); each is a small object
    of its own module.
    """

    def __init__(
        self, *, lane: Lane, store: Store, router: Router, policy: Policy | None = None,
        holds: Holds | None = None, runs: RunGate | None = None,
        links: LinkShortener | None = None, senders: TenantSenders | None = None,
    ) -> None:
        self._lane = lane
        self._store = store
        self._router = router
        self._policy = policy = policy or Policy()
        self._holds = holds
        self._runs = runs
        self._links = links
        self._senders = senders
        self._grants = Grants(router=router, lane=lane)
        self._reconciler = Reconciler(store=store, router=router, max_attempts=policy.max_attempts)
        self._grace = timedelta(seconds=policy.reconcile_grace_s)
        self._geo_ttl = timedelta(seconds=policy.geo_ttl_s)
        self._margin = timedelta(seconds=policy.expiry_margin_s)
        self._calls = 0
        self._busy: set[int] = set()  # rows this process works on; its sweeper leaves them be

    # ------------------------------------------------------------------ entry points

    async def handle_many(self, batches: list[SendBatch]) -> Outcome:
        """Enqueue batches (dedupe on the message key) and send what is new or pending.

        Several records' batches go as one: their requests share each statement and provider
        call (the geo and otp lanes take records in small groups, so one visit's send does
        not cost a dozen round trips of its own).

        A bulk batch is cut into ``parts`` slices worked on side by side (each its own
        enqueue, checks, grants, provider call and acceptance), so PostgreSQL statements and
        provider calls of one record overlap instead of queueing behind each other. The
        records are done, for faust, only when every slice is; the first error is raised then.
        """
        by_lane: dict[Lane, list[SendRequest]] = {}
        for batch in batches:
            by_lane.setdefault(batch.lane, []).extend(self._with_ttl(batch))
        whole = any(b.paced for b in batches)  # whole windows: a slice would be a call of its own
        outcomes: list[Outcome] = []
        for lane, items in by_lane.items():
            parts = max(1, self._policy.bulk_parts) if lane is Lane.BULK and not whole else 1
            size = -(-len(items) // parts) or 1
            slices = [items[start : start + size] for start in range(0, len(items), size)]
            done = await asyncio.gather(*(self._handle_items(lane, s) for s in slices),
                                        return_exceptions=True)
            errors = [d for d in done if isinstance(d, BaseException)]
            if errors:
                raise errors[0]
            outcomes += [d for d in done if isinstance(d, Outcome)]
        return Outcome.merged(outcomes)

    def _with_ttl(self, batch: SendBatch) -> list[SendRequest]:
        if batch.lane is not Lane.GEO:
            return list(batch.items)
        ttl_end = batch.created_at + self._geo_ttl  # a stale offer is worse than none
        return [i if i.expires_at else i.model_copy(update={"expires_at": ttl_end})
                for i in batch.items]

    async def _handle_items(self, lane: Lane, items: list[SendRequest]) -> Outcome:
        outcome = Outcome()

        rows, screened = await self._store.enqueue(lane, items)
        outcome.duplicates = sum(1 for r in rows if r.state not in (Q, S))
        await self.process([r for r in rows if r.state in (Q, S) and r.id not in self._busy],
                           outcome, screened)
        return outcome

    async def sweep(self, *, older_than_s: float) -> Outcome:
        """Reconcile and send this lane's rows left ``sending``/``queued`` (a crashed sender's)."""
        outcome, after = Outcome(), 0
        while True:
            found = await self._store.stale(self._lane, older_than_s=older_than_s, after_id=after)
            after = found.last_id
            await self.process([r for r in found.stale if r.id not in self._busy], outcome)
            if not found.more:
                return outcome

    async def process(
        self, rows: list[MessageRow], outcome: Outcome, screened: Screened | None = None
    ) -> None:
        """Rows in ``queued`` or ``sending``: reconcile, expire, then send in provider chunks
        (``screened``: what their enqueue already looked up)."""
        ids = {r.id for r in rows}
        self._busy |= ids
        try:
            await self._process(rows, outcome, screened or _NOTHING_SCREENED)
        finally:
            self._busy -= ids

    async def _process(
        self, rows: list[MessageRow], outcome: Outcome, screened: Screened
    ) -> None:
        # A `sending` row touched within the grace may be in a live sender's call right now:
        # it is left to that sender, or to a later sweep if that sender died.
        now = datetime.now(UTC)
        orphans = [r for r in rows if r.state is S
                   and (r.updated_at is None or r.updated_at <= now - self._grace)]
        pending = await self._reconciler.reconcile(orphans, outcome)
        pending += [r for r in rows if r.state is Q]
        pending = await self._expire(pending, Q, outcome)
        if self._holds is not None and self._lane is not Lane.OTP:  # OTPs: user-initiated
            pending = await self._holds.apply(pending, outcome, now, screened.zones,
                                              screened.recipients)
        for start in range(0, len(pending), 1000):
            await self._send_chunk(pending[start : start + 1000], outcome, screened, now)

    async def _send_chunk(
        self, chunk: list[MessageRow], outcome: Outcome, screened: Screened, checked: datetime
    ) -> None:
        """Send ``chunk`` in provider calls as grants allow (``checked``: when its quiet hours
        were last checked)."""
        chunk = await self._prepare(chunk, outcome, screened)
        tries = {r.id: r.attempts for r in chunk}
        segments = {r.id: segment_count(r.body) for r in chunk}
        flows = self._flows(chunk)
        chunk.sort(key=lambda r: flows[r.id])  # one tenant, run (and country) per provider call
        avoid: set[str] = set()
        while chunk:
            chunk = await self._expire(chunk, Q, outcome)  # the last grant may have waited long
            pace = None
            if self._runs is not None:
                chunk, pace = await self._runs.admit(chunk, outcome)
            if not chunk:
                break
            flow = flows[chunk[0].id]
            same_run = [r for r in chunk if flows[r.id] == flow]
            if not self._router.serves(self._lane, flow[0], flow[2] or None):  # stopped: waits
                await self._unroutable(same_run, outcome)
                chunk = chunk[len(same_run):]
                continue
            grant = await self._grants.take([segments[r.id] for r in same_run], avoid, pace,
                                            flow[0], flow[2] or None)
            part, _ = _take(same_run, segments, grant.segments)
            chunk = chunk[len(part):]
            await self._grants.refund_requests(grant, len(part))
            part, checked = await self._still_allowed(part, outcome, screened, checked)
            part = await self._claim(part, grant.route.spec.name, outcome)
            if not part:
                continue
            for r in part:
                tries[r.id] += 1
            retry, counted = await self._call(grant.route, part, outcome, segments)
            if not counted:  # a 429: the provider processed nothing, the attempt is given back
                for r in retry:
                    tries[r.id] -= 1
            if retry:
                avoid = (avoid | {grant.route.spec.name}
                         if len(avoid) + 1 < len(self._router.routes) else set())
            chunk = await self._out_of_attempts(retry, counted, tries, outcome) + chunk

    async def _prepare(
        self, chunk: list[MessageRow], outcome: Outcome, screened: Screened
    ) -> list[MessageRow]:
        """Consent (rows their enqueue found allowed skip this check; the claim checks them
        again), then tracked links."""
        unsure = [r for r in chunk if r.id in screened.blocked or r.id not in screened.ids]
        blocked = await self._suppress(unsure, outcome)
        chunk = [r for r in chunk if r.id not in blocked]
        if self._links is not None and self._lane is not Lane.OTP:
            chunk = await self._links.apply(chunk)
        return chunk

    async def _still_allowed(
        self, part: list[MessageRow], outcome: Outcome, screened: Screened, checked: datetime
    ) -> tuple[list[MessageRow], datetime]:
        """Quiet hours once more when the grants waited more than ``QUIET_RECHECK`` since
        they were checked (a chunk can wait past their start): the rows that may still go now
        (the others' granted segments are not given back), and when this was checked."""
        now = datetime.now(UTC)
        if self._holds is None or self._lane is Lane.OTP or now - checked < QUIET_RECHECK:
            return part, checked
        return await self._holds.quiet_now(part, outcome, now, screened.zones), now

    async def _claim(self, part: list[MessageRow], name: str, outcome: Outcome) -> list[MessageRow]:
        """``queued → sending`` with provider ``name``; the rows a STOP blocked since the chunk
        began are suppressed instead."""
        claimed = await self._store.claim(part, name)
        if len(claimed) < len(part):
            await self._suppress([r for r in part if r not in claimed], outcome)
        return claimed

    async def _out_of_attempts(
        self, retry: list[MessageRow], counted: bool, tries: dict[int, int], outcome: Outcome
    ) -> list[MessageRow]:
        """Rows to try again (``queued``); those out of attempts after a counted failure fail."""
        limit = self._policy.max_attempts
        spent = [r for r in retry if counted and tries[r.id] >= limit]
        if spent:
            why = f"gave up after {limit} attempts"
            outcome.failed += len(await self._store.move(spent, MessageState.FAILED, [Q], why))
            outcome.kill(spent, why)
        spent_ids = {r.id for r in spent}
        return [with_state(r, Q) for r in retry if r.id not in spent_ids]

    async def _call(
        self, route: Route, part: list[MessageRow], outcome: Outcome,
        segments: dict[int, int],
    ) -> tuple[list[MessageRow], bool]:
        """One provider call. Returns rows back in ``queued`` to retry, and whether it counts."""
        own = await self._senders.pick(part) \
            if self._senders is not None and route.spec.tenant_senders else {}
        async with route.calling:
            if await until_up(route.bucket.paused):  # a 429 arrived since the grant
                route.breaker.success()  # it answered (busy), and a half-open trial must end
                return await self._store.move(part, Q, [S], f"{route.spec.name} rate limited",
                                              attempts=-1), False
            part = await self._expire(part, S, outcome)  # waiting for the account may pass it
            if not part:
                route.breaker.abandon()  # no call: a half-open trial was not made
                return [], False
            outgoing = [Outgoing(client_ref=r.client_ref, to=r.phone, body=r.body,
                                 expires_at=r.expires_at, sender=own.get(r.id)) for r in part]
            async with self._router.calling(route):
                started = time.perf_counter()
                report = await route.adapter.send(outgoing)
                metrics.observe_call(route.spec.name, "submit", report.failure, started)
        if report.results:
            self._fault_hook()
        by_ref = {r.client_ref: r for r in part}
        accepted = [(by_ref[res.client_ref], res.provider_message_id) for res in report.results
                    if res.accepted and res.provider_message_id]
        part_ids = {by_ref[res.client_ref].id: res.part_ids for res in report.results
                    if res.accepted and res.part_ids}
        outcome.accepted += await self._store.accept(accepted, segments, part_ids)
        await self._rejected(route, [(by_ref[res.client_ref], res.error or "rejected")
                                     for res in report.results if not res.accepted], outcome)
        answered = {res.client_ref for res in report.results}
        rest = [r for r in part if r.client_ref not in answered]
        if not rest:
            route.breaker.success()
            return [], False
        if report.failure is None:  # an adapter left some unanswered: ask it what it kept
            route.breaker.success()
            log.warning("provider_left_unanswered", provider=route.spec.name, size=len(rest))
            rows = [with_state(r, S, route.spec.name) for r in rest]
            return await self._reconciler.reconcile(rows, outcome), True
        return await self._failed_call(route, rest, report.failure, outcome)

    async def _rejected(
        self, route: Route, rejected: list[tuple[MessageRow, str]], outcome: Outcome
    ) -> None:
        """Messages the provider refused one by one fail with its error; a refusal because the
        recipient unsubscribed at the carrier (Twilio 21610) also records an opt-out."""
        failed = []
        for row, error in rejected:
            failed += [(r.tenant_id, route.spec.name, metrics.error_code(error))
                       for r in await self._store.move([row], MessageState.FAILED, [S],
                                                       f"provider rejected: {error}")]
        outcome.failed += len(failed)
        metrics.count_errors(failed)
        table = error_table(route.spec.kind)
        opted = [row for row, error in rejected
                 if table.error(error.split(":", 1)[0].strip()) is ErrorClass.OPTED_OUT]
        if opted:
            await self._store.carrier_opt_out(opted)

    async def _failed_call(
        self, route: Route, rest: list[MessageRow], failure: ProviderError, outcome: Outcome
    ) -> tuple[list[MessageRow], bool]:
        name = route.spec.name
        if isinstance(failure, ProviderRateLimited):
            route.breaker.success()  # it answered: alive, just busy
            outcome.rate_limited += 1
            log.info("provider_429", provider=name, retry_after=failure.retry_after, size=len(rest))
            metrics.PROVIDER_THROTTLED.labels(provider=name).inc()
            await until_up(partial(route.bucket.pause, failure.retry_after))
            return await self._store.move(rest, Q, [S], f"{name} rate limited", attempts=-1), False
        if isinstance(failure, ProviderUnavailable):
            route.breaker.failure()
            log.warning("provider_unavailable", provider=name, error=str(failure),
                        ambiguous=failure.ambiguous, size=len(rest))
            await asyncio.sleep(backoff(1))
            if failure.ambiguous:  # the claim made them `sending` with this provider
                rows = [with_state(r, S, name) for r in rest]
                return await self._reconciler.reconcile(rows, outcome), True
            if failure.unreached:  # the route is down, not the message at fault: not counted
                return await self._store.move(rest, Q, [S], f"{name} unreachable: {failure}",
                                              attempts=-1), False
            return await self._store.move(rest, Q, [S], f"{name} unavailable: {failure}"), True
        route.breaker.success()
        why = f"{name} refused the request: {failure}"
        failed = await self._store.move(rest, MessageState.FAILED, [S], why)
        outcome.failed += len(failed)
        metrics.count_errors((r.tenant_id, name, "request_refused") for r in failed)
        outcome.kill(rest, why)
        return [], False

    async def _expire(
        self, rows: list[MessageRow], state: MessageState, outcome: Outcome
    ) -> list[MessageRow]:
        """Rows (in ``state``) at or within the margin of their expiry expire, with reason
        ``deadline`` (a campaign's) or ``ttl passed`` (``sender.expiry``); returns the others."""
        stale = expiry.due(rows, datetime.now(UTC), self._margin)
        if not stale:
            return rows
        for why in dict.fromkeys(map(expiry.reason, stale)):
            outcome.expired += len(await self._store.move(
                [r for r in stale if expiry.reason(r) == why], MessageState.EXPIRED, [state], why))
        gone = {r.id for r in stale}
        return [r for r in rows if r.id not in gone]

    async def _suppress(self, rows: list[MessageRow], outcome: Outcome) -> set[int]:
        """Opted-out numbers and marketing without consent (``sender.consent``): suppressed."""
        if not rows:
            return set()
        why = await self._store.suppress(rows)
        outcome.suppressed += len(why)
        return set(why)

    def _flows(self, rows: list[MessageRow]) -> dict[int, tuple[int, int, str]]:
        """What each row's provider call serves: one tenant (its fair share), one campaign run
        (its pace) and, when some route serves some countries only, one country."""
        by_country = self._router.by_country
        return {r.id: (r.tenant_id, r.campaign_run_id or 0,
                       (country_of(r.phone) or "?") if by_country else "") for r in rows}

    async def _unroutable(self, rows: list[MessageRow], outcome: Outcome) -> None:
        """No provider account serves this lane for the rows' tenant: a configuration error."""
        why = f"no provider serves lane {self._lane.value} for tenant {rows[0].tenant_id}"
        log.error("no_route", tenant_id=rows[0].tenant_id, lane=self._lane.value, size=len(rows))
        outcome.failed += len(await self._store.move(rows, MessageState.FAILED, [Q], why))
        outcome.kill(rows, why)

    def _fault_hook(self) -> None:
        """TEST ONLY (``sender_fault_kill_after_calls``): die between acceptance and commit."""
        if self._policy.fault_kill_after_calls:
            self._calls += 1
            if self._calls >= self._policy.fault_kill_after_calls:
                log.warning("fault_hook_kill", calls=self._calls)
                os.kill(os.getpid(), signal.SIGKILL)


QUIET_RECHECK = timedelta(seconds=0.5)
"""A provider call more than this after its rows' quiet-hours check checks them again."""


def _take(
    chunk: list[MessageRow], segments: dict[int, int], granted: int
) -> tuple[list[MessageRow], list[MessageRow]]:
    """The longest head of ``chunk`` whose segments fit in ``granted`` (at least one row)."""
    used, n = 0, 0
    for row in chunk:
        if n and used + segments[row.id] > granted:
            break
        used += segments[row.id]
        n += 1
    return chunk[:n], chunk[n:]

