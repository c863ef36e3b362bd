"""In-memory stand-ins for the dispatcher's collaborators, so its paths run with no I/O at all.

- :class:`MemoryStore`: the ``sender.journal.Store`` protocol over a dict, with the SQL's
  conditional moves (a move only takes rows in one of ``frm``) and the events the
  ``Journal`` would publish;
- :class:`FakeBucket`: the ``TokenBucket`` methods the dispatcher and ``Grants`` call;
- :class:`FakeProvider`: the ``Provider`` protocol answering from a script, one
  :class:`Answer` per call, and remembering what it really kept (its ``lookup`` answers from
  that, as a real provider does after a timeout);
- :func:`route` / :func:`router`: provider accounts of such fakes, primary first in the order
  given (the weighted draw is ``tests/unit/test_routing.py``'s business).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from sender.breaker import CircuitBreaker
from sender.dispatch import Dispatcher, Policy
from sender.limits import FairShare, Grant, TokenBucket
from sender.models import Lane, MessageState, ProviderSpec, SendBatch, SendRequest
from sender.providers import Outgoing, ProviderResult, SendReport
from sender.repo import MessageRow, PendingPage, Screened
from sender.routing import Route, Router, serves

__all__ = [
    "ACCEPT",
    "Answer",
    "FakeBucket",
    "FakeProvider",
    "MemoryStore",
    "batch",
    "dispatcher",
    "rate_limited",
    "refused",
    "route",
    "router",
    "timeout",
    "unavailable",
]

Q, S = MessageState.QUEUED, MessageState.SENDING
Event = tuple[str, MessageState, str]  # message key, state, reason


# ---------------------------------------------------------------------------------- the store


@dataclass(slots=True)
class _Stored:
    row: MessageRow
    confirmation: bool
    reason: str | None = None
    provider_message_id: str | None = None
    segments: int | None = None
    not_before: datetime | None = None


class MemoryStore:
    """The message log in a dict. ``blocked``: phones that are opted out (or lack consent);
    their rows are screened at enqueue, suppressed, and never claimed."""

    def __init__(self, *, blocked: set[str] | None = None) -> None:
        self.blocked = blocked or set()
        self.events: list[Event] = []  # what the Journal would publish on `delivery`
        self.audit: list[tuple[str, MessageState | None, MessageState, str]] = []  # every move
        self.links: list[tuple[str, int, str, str]] = []
        self.carrier_opt_outs: list[str] = []  # phones the carrier said unsubscribed
        self.recipients: dict[tuple[int, str], int] = {}  # (tenant, phone) → recipient id
        self.held: dict[int, int] = {}  # geo offers held back per reserving run
        self._rows: dict[int, _Stored] = {}
        self._by_key: dict[str, int] = {}

    # ------------------------------------------------------------------ for tests to read

    def row(self, key: str) -> MessageRow:
        return self._rows[self._by_key[key]].row

    def state(self, key: str) -> MessageState:
        return self.row(key).state

    def reason(self, key: str) -> str | None:
        return self._rows[self._by_key[key]].reason

    def provider_id(self, key: str) -> str | None:
        return self._rows[self._by_key[key]].provider_message_id

    def trail(self, key: str) -> list[MessageState]:
        """The states ``key`` went through, in order."""
        return [to for k, _, to, _ in self.audit if k == key]

    def message_keys(self) -> list[str]:
        return list(self._by_key)

    # ------------------------------------------------------------------ the Store protocol

    async def enqueue(self, lane: Lane, items: list[SendRequest]) -> tuple[list[MessageRow], Screened]:
        rows: dict[str, MessageRow] = {}
        new: list[MessageRow] = []
        for item in items:
            if item.message_key in rows:
                continue
            if item.message_key in self._by_key:
                rows[item.message_key] = self.row(item.message_key)
                continue
            row = MessageRow(
                id=len(self._rows) + 1, message_key=item.message_key, tenant_id=item.tenant_id,
                lane=lane, state=Q, phone=item.phone, body=item.body, client_ref=item.message_key,
                expires_at=item.expires_at, attempts=0, user_id=item.user_id,
                promotion_id=item.promotion_id, campaign_run_id=item.campaign_run_id,
                updated_at=datetime.now(UTC),
            )
            self._rows[row.id] = _Stored(row, item.confirmation)
            self._by_key[row.message_key] = row.id
            self.audit.append((row.message_key, None, Q, "enqueued"))
            rows[item.message_key] = row
            new.append(row)
        screened = Screened(zones={(r.tenant_id, r.phone): None for r in new},
                            ids={r.id for r in new},
                            blocked={r.id for r in new if self._is_blocked(r.id)})
        return list(rows.values()), screened

    async def stale(self, lane: Lane, *, older_than_s: float, after_id: int) -> PendingPage:
        edge = datetime.now(UTC) - timedelta(seconds=older_than_s)
        rows = [s.row for i, s in sorted(self._rows.items()) if i > after_id
                and s.row.lane is lane and s.row.state in (Q, S)
                and s.row.updated_at is not None and s.row.updated_at <= edge]
        return PendingPage(stale=rows, last_id=rows[-1].id if rows else after_id, more=False)

    async def profile_zones(self, recipients: list[tuple[int, str]]) -> dict[tuple[int, str], str]:
        return {}

    async def recipient_ids(self, recipients: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
        return {k: self.recipients[k] for k in recipients if k in self.recipients}

    async def held_back(self, counts: dict[int, int]) -> None:
        for run, n in counts.items():
            self.held[run] = self.held.get(run, 0) + n

    async def move(self, rows: Sequence[MessageRow], to: MessageState, frm: Sequence[MessageState],
                   reason: str, *, attempts: int = 0) -> list[MessageRow]:
        moved = [r for r in rows if self._rows[r.id].row.state in frm]
        for r in moved:
            self._set(r.id, to, reason, attempt=attempts)
        if to not in (Q, S):
            self.events += [(r.message_key, to, reason) for r in moved]
        return moved

    async def claim(self, rows: list[MessageRow], provider: str) -> list[MessageRow]:
        claimed = [r for r in rows
                   if self._rows[r.id].row.state is Q and not self._is_blocked(r.id)]
        for r in claimed:
            self._set(r.id, S, f"calling {provider}", provider=provider, attempt=1)
        return claimed

    async def accept(self, pairs: Sequence[tuple[MessageRow, str]],
                     segments: dict[int, int] | None = None,
                     part_ids: dict[int, tuple[str, ...]] | None = None) -> int:
        moved = [(r, pmid) for r, pmid in pairs if self._rows[r.id].row.state is S]
        for r, pmid in moved:
            self._set(r.id, MessageState.ACCEPTED, None)
            stored = self._rows[r.id]
            stored.provider_message_id = pmid
            stored.segments = (segments or {}).get(r.id, stored.segments)
        self.events += [(r.message_key, MessageState.ACCEPTED, "provider accepted") for r, _ in moved]
        return len(moved)

    async def suppress(self, rows: list[MessageRow]) -> dict[int, str]:
        why = {r.id: "opted out" for r in rows
               if self._rows[r.id].row.state is Q and self._is_blocked(r.id)}
        for r in rows:
            if r.id in why:
                self._set(r.id, MessageState.SUPPRESSED, why[r.id])
                self.events.append((r.message_key, MessageState.SUPPRESSED, why[r.id]))
        return why

    async def defer(self, held: list[tuple[MessageRow, datetime]], *, reason: str) -> int:
        moved = [(r, t) for r, t in held if self._rows[r.id].row.state is Q]
        for r, t in moved:
            self._set(r.id, MessageState.DEFERRED, f"{reason}{t.isoformat()}")
            self._rows[r.id].not_before = t
        self.events += [(r.message_key, MessageState.DEFERRED, reason.removesuffix(" until "))
                        for r, _ in moved]
        return len(moved)

    async def save_links(self, links: list[tuple[str, int, str, str]]) -> None:
        self.links += links

    async def carrier_opt_out(self, rows: list[MessageRow]) -> None:
        self.blocked |= {r.phone for r in rows}
        self.carrier_opt_outs += [r.phone for r in rows]

    # ------------------------------------------------------------------ helpers

    def _is_blocked(self, id_: int) -> bool:
        stored = self._rows[id_]
        return not stored.confirmation and stored.row.phone in self.blocked

    def _set(self, id_: int, to: MessageState, reason: str | None, *, provider: str | None = None,
             attempt: int = 0) -> None:
        stored = self._rows[id_]
        old = stored.row
        stored.row = replace(old, state=to, provider=provider or old.provider,
                             attempts=old.attempts + attempt, updated_at=datetime.now(UTC))
        stored.reason = reason
        self.audit.append((old.message_key, old.state, to, reason or ""))


# ---------------------------------------------------------------------------------- limits


class FakeBucket:
    """A ``TokenBucket`` without Redis: unlimited, or at most ``per_grant`` tokens a grant;
    :meth:`pause` (a Retry-After) grants nothing until it runs out, as the real one."""

    def __init__(self, *, per_grant: int | None = None, paused_for: float = 0.0) -> None:
        self.per_grant = per_grant
        self.pauses: list[float] = []  # every pause asked for, in seconds
        self.refunded = 0
        self._until = datetime.now(UTC)
        if paused_for > 0:
            self._until += timedelta(seconds=paused_for)

    async def try_acquire(self, requested: int, minimum: int = 1) -> Grant:
        left = (self._until - datetime.now(UTC)).total_seconds()
        if left > 0:
            return Grant(granted=0, wait_s=left)
        return Grant(granted=min(requested, self.per_grant or requested), wait_s=0.0)

    async def paused(self) -> bool:
        return self._until > datetime.now(UTC)

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if seconds > 0:
            self._until = max(self._until, datetime.now(UTC) + timedelta(seconds=seconds))

    async def refund(self, tokens: int) -> None:
        self.refunded += max(tokens, 0)

    def capped(self, key: str, *, rate: float, burst: float) -> FakeBucket:
        return self

    def shared_by(self, share: FairShare, member: str) -> FakeBucket:
        return self


# ---------------------------------------------------------------------------------- providers


@dataclass(frozen=True, slots=True)
class Answer:
    """One scripted call: the first ``accept`` messages accepted (None: all), the next ``reject``
    rejected with ``error``, then the next ``keep`` kept without an answer (a timeout after
    writing), and ``failure`` for every message without an answer."""

    accept: int | None = None
    reject: int = 0
    error: str = "invalid number"
    keep: int = 0
    failure: ProviderError | None = None


ACCEPT = Answer()


def rate_limited(retry_after: float) -> Answer:
    return Answer(accept=0, failure=ProviderRateLimited("HTTP 429", retry_after=retry_after))


def unavailable() -> Answer:
    """An HTTP 5xx: certainly not processed."""
    return Answer(accept=0, failure=ProviderUnavailable("HTTP 503"))


def unreachable() -> Answer:
    """A refused connection: the provider is down and never saw the request."""
    return Answer(accept=0, failure=ProviderUnavailable("ConnectError", unreached=True))


def timeout(keep: int = 0) -> Answer:
    """A read timeout after the request was written: the provider kept the first ``keep``."""
    return Answer(accept=0, keep=keep, failure=ProviderUnavailable("read timeout", ambiguous=True))


def refused(why: str = "HTTP 400: bad sender id") -> Answer:
    return Answer(accept=0, failure=ProviderError(why))


class FakeProvider:
    """The ``Provider`` protocol from a script of :class:`Answer` (then accepting everything)."""

    max_batch = 1000

    def __init__(self, name: str, *script: Answer, lookup: bool = True) -> None:
        self.name = name
        self.supports_lookup = lookup
        self.script = list(script)
        self.calls: list[list[str]] = []  # the client references of each call
        self.lookups: list[str] = []
        self.kept: dict[str, str] = {}  # client reference → our message id
        self.kept_log: list[str] = []  # every keep, so a second keep of a reference shows

    def sent(self) -> list[str]:
        """Every client reference sent, over all calls."""
        return [ref for call in self.calls for ref in call]

    async def send(self, messages: list[Outgoing]) -> SendReport:
        self.calls.append([m.client_ref for m in messages])
        answer = self.script.pop(0) if self.script else ACCEPT
        refs = [m.client_ref for m in messages]
        n_ok = len(refs) if answer.accept is None else answer.accept
        ok, bad = refs[:n_ok], refs[n_ok : n_ok + answer.reject]
        for ref in ok + refs[n_ok + answer.reject :][: answer.keep]:
            self._keep(ref)
        results = [ProviderResult(ref, True, self.kept[ref]) for ref in ok]
        results += [ProviderResult(ref, False, None, answer.error) for ref in bad]
        return SendReport(results=results, failure=answer.failure)

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        self.lookups.append(client_ref)
        pmid = self.kept.get(client_ref)
        return None if pmid is None else ProviderResult(client_ref, True, pmid)

    async def aclose(self) -> None:
        return None

    def _keep(self, ref: str) -> None:
        self.kept_log.append(ref)
        self.kept[ref] = f"{self.name}-{len(self.kept_log)}"


# ---------------------------------------------------------------------------------- routing


class _InOrder(Router):
    """A router whose primary is the first account listed, then the others in order, so each
    scripted path is deterministic."""

    def for_lane(
        self, lane: Lane, tenant: int | None = None, country: str | None = None
    ) -> list[Route]:
        return [r for r in self.routes if serves(r.spec, lane, tenant, country)]


def route(adapter: FakeProvider, *, bucket: FakeBucket | None = None, failures: int = 100,
          open_s: float = 0.01, **spec: Any) -> Route:
    """An account of ``adapter`` (``spec``: ProviderSpec fields such as lanes, tenants)."""
    s = ProviderSpec.model_validate({"name": adapter.name, "url": "http://fake.invalid",
                                     "token": "t", "lookup": adapter.supports_lookup, **spec})
    return Route(spec=s, adapter=adapter,
                 breaker=CircuitBreaker(adapter.name, failures=failures, open_s=open_s),
                 bucket=cast(TokenBucket, bucket or FakeBucket()))


def router(*accounts: FakeProvider | Route) -> Router:
    return _InOrder([a if isinstance(a, Route) else route(a) for a in accounts])


# ---------------------------------------------------------------------------------- sending


def dispatcher(store: MemoryStore, *accounts: FakeProvider | Route, lane: Lane = Lane.OTP,
               max_attempts: int = 3) -> Dispatcher:
    return Dispatcher(lane=lane, store=store, router=router(*accounts),
                      policy=Policy(max_attempts=max_attempts))


def batch(n: int, *, lane: Lane = Lane.OTP, tenant: int = 1, phones: Sequence[str] = (),
          prefix: str = "msg") -> SendBatch:
    """``n`` one-segment requests keyed ``<prefix>-0000``…; ``phones`` replace the first ones."""
    numbers = [*phones, *(f"+1312555{i:04d}" for i in range(len(phones), n))]
    return SendBatch(lane=lane, created_at=datetime.now(UTC), items=[
        SendRequest(message_key=f"{prefix}-{i:04d}", tenant_id=tenant, phone=numbers[i],
                    body=f"Your code is {i:06d}")
        for i in range(n)
    ])

