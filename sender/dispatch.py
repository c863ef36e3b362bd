"""The sender's work on one send batch: dedupe, expire, rate-limit, call, record.

Ordering guarantees (see docs/DESIGN.md, "Sending without duplicates"):
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
import random
import signal
from datetime import UTC, datetime, timedelta
from functools import partial

import asyncpg

from hexcast.core.cache import Keys
from hexcast.core.control import RunControl
from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.core.logging import get_logger
from sender import repo
from sender.gates import Gates
from sender.journal import EventSink, Outcome, with_state
from sender.models import Lane, MessageState, SendBatch, SendRequest
from sender.provider import Outgoing, ProviderResult
from sender.ratelimit import CapRule, RecipientCaps
from sender.routing import Route, Router
from sender.text import segment_count

__all__ = ["Dispatcher", "EventSink", "Outcome"]

log = get_logger("hexcast.sender")
Q, S = MessageState.QUEUED, MessageState.SENDING
_LOOKUP_CONCURRENCY = 16


class Dispatcher(Gates):
    """Sends the rows of one lane: reconcile, expire, comply, rate-limit, call, record."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        router: Router,
        lane: Lane,
        max_attempts: int,
        actor: str,
        publish: EventSink,
        reconcile_grace_s: float = 300.0,
        geo_ttl_s: float = 1800.0,
        quiet_hours: bool = True,
        link_base: str | None = None,
        control: RunControl | None = None,
        keys: Keys | None = None,
        pause_recheck_s: float = 15.0,
        caps: RecipientCaps | None = None,
        cap_rules: tuple[CapRule, CapRule] | None = None,
        fault_kill_after_calls: int = 0,
        bulk_parts: int = 1,
    ) -> None:
        super().__init__(pool=pool, actor=actor, publish=publish)
        self._router = router
        self._lane = lane
        self._max_attempts = max_attempts
        self._grace = timedelta(seconds=reconcile_grace_s)
        self._geo_ttl = timedelta(seconds=geo_ttl_s)
        self._quiet = quiet_hours
        self._link_base = link_base
        self._control = control
        self._keys = keys
        self._pause_recheck = timedelta(seconds=pause_recheck_s)
        self._caps = caps
        self._cap_rules = cap_rules or (CapRule(3, 5, 600), CapRule(3, 3, 600))
        self._fault_after = fault_kill_after_calls
        self._parts = max(1, bulk_parts)
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
        outcomes: list[Outcome] = []
        for lane, items in by_lane.items():
            parts = self._parts if lane is Lane.BULK else 1
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

        async def enqueue() -> tuple[list[repo.MessageRow], repo.Screened]:
            async with self._pool.acquire() as conn:
                return await repo.enqueue(conn, lane=lane, items=items, actor=self._actor)

        rows, screened = await self._infra(enqueue)
        outcome.duplicates = sum(1 for r in rows if r.state not in (Q, S))
        await self.process([r for r in rows if r.state in (Q, S) and r.id not in self._busy],
                           outcome, screened)
        return outcome

    async def sweep(self, *, older_than_s: float) -> Outcome:
        """Reconcile and send this lane's rows left ``sending``/``queued`` (a crashed sender's)."""
        outcome, after = Outcome(), 0
        while True:
            async def page(after_id: int = after) -> repo.PendingPage:
                async with self._pool.acquire() as conn:
                    return await repo.stale_rows(conn, lane=self._lane, older_than_s=older_than_s,
                                                 after_id=after_id, limit=1000)

            found = await self._infra(page)
            after = found.last_id
            await self.process([r for r in found.stale if r.id not in self._busy], outcome)
            if not found.more:
                return outcome

    async def process(
        self, rows: list[repo.MessageRow], outcome: Outcome, screened: repo.Screened | None = None
    ) -> None:
        """Rows in ``queued`` or ``sending``: reconcile, expire, then send in provider chunks
        (``screened``: what their enqueue already looked up)."""
        ids = {r.id for r in rows}
        self._busy |= ids
        try:
            await self._process(rows, outcome, screened or repo.Screened(zones={}, ids=set(), blocked=set()))
        finally:
            self._busy -= ids

    async def _process(
        self, rows: list[repo.MessageRow], outcome: Outcome, screened: repo.Screened
    ) -> None:
        # A `sending` row touched within the grace may be in a live sender's call right now:
        # it is left to that sender, or to a later sweep if that sender died.
        now = datetime.now(UTC)
        orphans = [r for r in rows if r.state is S
                   and (r.updated_at is None or r.updated_at <= now - self._grace)]
        pending = await self._reconcile(orphans, outcome)
        pending += [r for r in rows if r.state is Q]
        stale = [r for r in pending if r.expires_at is not None and r.expires_at <= now]
        outcome.expired += len(await self._move(stale, MessageState.EXPIRED, [Q], "ttl passed"))
        stale_ids = {r.id for r in stale}
        pending = [r for r in pending if r.id not in stale_ids]
        if self._lane is not Lane.OTP:  # OTPs, confirmations: user-initiated, no such rules
            pending = await self._recipient_rules(pending, outcome, now, screened.zones)
        for start in range(0, len(pending), 1000):
            await self._send_chunk(pending[start : start + 1000], outcome, screened)

    # ------------------------------------------------------------------ reconciliation

    async def _reconcile(
        self, rows: list[repo.MessageRow], outcome: Outcome
    ) -> list[repo.MessageRow]:
        """Rows left ``sending``: accept what the provider saw, requeue what it never saw.

        A provider without lookup cannot tell: those rows become ``unknown`` and stay unsent.
        Returns the requeued rows (now ``queued``) to send again.
        """
        resend: list[repo.MessageRow] = []
        by_provider: dict[str | None, list[repo.MessageRow]] = {}
        for row in rows:
            by_provider.setdefault(row.provider, []).append(row)
        for name, group in by_provider.items():
            route = self._router.by_name(name)
            if route is None or not route.adapter.supports_lookup:
                why = f"provider {name} has no lookup: outcome unknown, not resent"
                outcome.unknown += len(await self._move(group, MessageState.UNKNOWN, [S], why))
                continue
            resend += await self._reconcile_by_lookup(route, group, outcome)
        return resend

    async def _reconcile_by_lookup(
        self, route: Route, rows: list[repo.MessageRow], outcome: Outcome
    ) -> list[repo.MessageRow]:
        gate = asyncio.Semaphore(_LOOKUP_CONCURRENCY)

        async def one(row: repo.MessageRow) -> ProviderResult | None:
            async with gate:
                return await self._lookup(route, row.client_ref)

        try:
            found = await asyncio.gather(*(one(r) for r in rows))
        except ProviderUnavailable as exc:  # left in `sending`; the next sweep tries again
            log.warning("reconcile_postponed", provider=route.spec.name, error=str(exc),
                        rows=len(rows))
            return []
        seen = [(r, f.provider_message_id) for r, f in zip(rows, found, strict=True)
                if f is not None and f.provider_message_id]
        outcome.accepted += await self._accept(seen)
        never = [r for r, f in zip(rows, found, strict=True) if f is None]
        requeued = await self._move(never, Q, [S], f"{route.spec.name} never saw it; resending")
        log.info("reconciled", provider=route.spec.name, seen=len(seen), resend=len(requeued))
        return [with_state(r, Q) for r in requeued]

    async def _lookup(self, route: Route, client_ref: str) -> ProviderResult | None:
        for attempt in range(self._max_attempts):
            try:
                return await route.adapter.lookup(client_ref)
            except ProviderUnavailable:
                await asyncio.sleep(_backoff(attempt))
        raise ProviderUnavailable(f"lookup of {client_ref} failed {self._max_attempts} times")

    # ------------------------------------------------------------------ sending

    async def _grant(
        self, sizes: list[int], avoid: set[str], pace: tuple[str, float] | None, tenant: int,
    ) -> tuple[Route, int, int]:
        """A provider serving the lane and ``tenant`` whose breaker and shared rate limits
        grant segments for a head of the messages of ``sizes`` segments (at least the first):
        the account's segments/s and requests/s, the campaign's ``pace`` and, on the bulk lane,
        ``tenant``'s fair share. Providers in ``avoid`` (they just failed this chunk) come
        last. Waits while none can. Returns the route, the segments and the requests taken."""
        while True:
            routes = self._router.for_lane(self._lane, tenant)
            routes.sort(key=lambda r: r.spec.name in avoid)
            wait = 1.0
            for route in routes:
                if route.breaker.retry_in() > 0:
                    wait = min(wait, route.breaker.retry_in())
                    continue
                granted, requests, wait_s = await self._try_route(route, sizes, pace, tenant)
                if granted and route.breaker.allow():
                    return route, granted, requests
                wait = min(wait, wait_s or 0.05)
            await asyncio.sleep(max(wait, 0.005))

    async def _try_route(
        self, route: Route, sizes: list[int], pace: tuple[str, float] | None, tenant: int
    ) -> tuple[int, int, float]:
        """Requests first (one per batch call, one per message for a single-message API),
        then the segments of the messages those requests can carry; unused requests go back."""
        requests = 0
        if route.requests is not None:
            wanted = 1 if route.spec.mode == "batch" else len(sizes)
            got = await self._infra(partial(route.requests.try_acquire, wanted))
            if not got.granted:
                return 0, 0, got.wait_s
            requests = got.granted
            sizes = sizes if route.spec.mode == "batch" else sizes[:requests]
        bucket = route.bucket
        if pace is not None:
            bucket = bucket.capped(pace[0], rate=pace[1], burst=max(pace[1], 1.0))
        if route.fair is not None:
            bucket = bucket.shared_by(route.fair, str(tenant))
        grant = await self._infra(partial(bucket.try_acquire, sum(sizes), sizes[0]))
        if not grant.granted and requests and route.requests is not None:
            await self._infra(partial(route.requests.refund, requests))
            requests = 0
        return grant.granted, requests, grant.wait_s

    async def _send_chunk(
        self, chunk: list[repo.MessageRow], outcome: Outcome, screened: repo.Screened
    ) -> None:
        # Rows their enqueue found allowed skip the check here; the claim checks them again.
        unsure = [r for r in chunk if r.id in screened.blocked or r.id not in screened.ids]
        blocked = await self._suppress(unsure, outcome)
        chunk = [r for r in chunk if r.id not in blocked]
        chunk = await self._shorten(chunk)
        tries = {r.id: r.attempts for r in chunk}
        segments = {r.id: segment_count(r.body) for r in chunk}
        chunk.sort(key=_flow)  # one tenant and campaign run per provider call
        avoid: set[str] = set()
        while chunk:
            chunk, pace = await self._run_gate(chunk, outcome)
            if not chunk:
                break
            flow = _flow(chunk[0])
            same_run = [r for r in chunk if _flow(r) == flow]
            if not self._router.for_lane(self._lane, flow[0]):
                await self._unroutable(same_run, outcome)
                chunk = chunk[len(same_run):]
                continue
            route, granted, requests = await self._grant(
                [segments[r.id] for r in same_run], avoid, pace, flow[0])
            part, _ = _take(same_run, segments, granted)
            chunk = chunk[len(part):]
            if route.requests is not None and route.spec.mode == "single" and requests > len(part):
                await self._infra(partial(route.requests.refund, requests - len(part)))
            name = route.spec.name
            claimed = await self._claim(part, name)
            if len(claimed) < len(part):  # a STOP may have landed since the chunk began
                await self._suppress([r for r in part if r not in claimed], outcome)
            part = claimed
            if not part:
                continue
            for r in part:
                tries[r.id] += 1
            retry, counted = await self._call(route, part, outcome, segments)
            if retry:
                avoid = avoid | {name} if len(avoid) + 1 < len(self._router.routes) else set()
            spent = [r for r in retry if counted and tries[r.id] >= self._max_attempts]
            if spent:
                why = f"gave up after {self._max_attempts} attempts"
                outcome.failed += len(await self._move(spent, MessageState.FAILED, [Q], why))
                outcome.kill(spent, why)
            spent_ids = {r.id for r in spent}
            chunk = [with_state(r, Q) for r in retry if r.id not in spent_ids] + chunk

    async def _call(
        self, route: Route, part: list[repo.MessageRow], outcome: Outcome,
        segments: dict[int, int],
    ) -> tuple[list[repo.MessageRow], bool]:
        """One provider call. Returns rows back in ``queued`` to retry, and whether it counts."""
        outgoing = [Outgoing(client_ref=r.client_ref, to=r.phone, body=r.body) for r in part]
        async with route.calling:
            if await self._infra(route.bucket.paused):  # a 429 arrived since the grant
                route.breaker.success()  # it answered (busy), and a half-open trial must end
                return await self._move(part, Q, [S], f"{route.spec.name} rate limited"), False
            report = await route.adapter.send(outgoing)
        if report.results:
            self._fault_hook()
        by_ref = {r.client_ref: r for r in part}
        accepted = [(by_ref[res.client_ref], res.provider_message_id) for res in report.results
                    if res.accepted and res.provider_message_id]
        outcome.accepted += await self._accept(accepted, segments)
        for res in report.results:
            if not res.accepted:
                outcome.failed += len(await self._move(
                    [by_ref[res.client_ref]], MessageState.FAILED, [S],
                    f"provider rejected: {res.error}",
                ))
        answered = {res.client_ref for res in report.results}
        rest = [r for r in part if r.client_ref not in answered]
        if report.failure is None or not rest:
            route.breaker.success()
            return [], False
        return await self._failed_call(route, rest, report.failure, outcome)

    async def _failed_call(
        self, route: Route, rest: list[repo.MessageRow], failure: ProviderError, outcome: Outcome
    ) -> tuple[list[repo.MessageRow], bool]:
        name = route.spec.name
        if isinstance(failure, ProviderRateLimited):
            route.breaker.success()  # it answered: alive, just busy
            outcome.rate_limited += 1
            log.info("provider_429", provider=name, retry_after=failure.retry_after, size=len(rest))
            await self._infra(partial(route.bucket.pause, failure.retry_after))
            await self._infra(partial(self._router.count, "429", name))
            return await self._move(rest, Q, [S], f"{name} rate limited"), False
        if isinstance(failure, ProviderUnavailable):
            route.breaker.failure()
            log.warning("provider_unavailable", provider=name, error=str(failure),
                        ambiguous=failure.ambiguous, size=len(rest))
            await asyncio.sleep(_backoff(1))
            if failure.ambiguous:  # the claim made them `sending` with this provider
                return await self._reconcile([with_state(r, S, name) for r in rest], outcome), True
            return await self._move(rest, Q, [S], f"{name} unavailable: {failure}"), True
        route.breaker.success()
        why = f"{name} refused the request: {failure}"
        outcome.failed += len(await self._move(rest, MessageState.FAILED, [S], why))
        outcome.kill(rest, why)
        return [], False

    async def _unroutable(self, rows: list[repo.MessageRow], outcome: Outcome) -> None:
        """No provider account serves this lane for the rows' tenant: a configuration error."""
        why = f"no provider serves lane {self._lane.value} for tenant {rows[0].tenant_id}"
        log.error("no_route", tenant_id=rows[0].tenant_id, lane=self._lane.value, size=len(rows))
        outcome.failed += len(await self._move(rows, MessageState.FAILED, [Q], why))
        outcome.kill(rows, why)

    def _fault_hook(self) -> None:
        """TEST ONLY (``sender_fault_kill_after_calls``): die between acceptance and commit."""
        if self._fault_after:
            self._calls += 1
            if self._calls >= self._fault_after:
                log.warning("fault_hook_kill", calls=self._calls)
                os.kill(os.getpid(), signal.SIGKILL)


def _flow(row: repo.MessageRow) -> tuple[int, int]:
    """What a provider call serves: one tenant (its fair share) and one campaign run (its pace)."""
    return row.tenant_id, row.campaign_run_id or 0


def _take(
    chunk: list[repo.MessageRow], segments: dict[int, int], granted: int
) -> tuple[list[repo.MessageRow], list[repo.MessageRow]]:
    """The longest head of ``chunk`` whose segments fit in ``granted`` (at least one row)."""
    used, n = 0, 0
    for row in chunk:
        if n and used + segments[row.id] > granted:
            break
        used += segments[row.id]
        n += 1
    return chunk[:n], chunk[n:]


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped at 10 s."""
    return float(random.uniform(0, min(10.0, 0.2 * 2**attempt)))
