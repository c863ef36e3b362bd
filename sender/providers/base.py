"""What every provider adapter speaks: the message handed to it, its answer per message, and the
:class:`Provider` protocol the dispatcher calls. Adapters translate their transport's errors into
hexcast's provider errors (``hexcast.core.errors``) inside ``send``/``lookup``:

- :class:`~hexcast.core.errors.ProviderRateLimited`: the provider refused for now (429), with its
  Retry-After; nothing was processed.
- :class:`~hexcast.core.errors.ProviderUnavailable`: nothing answered; ``ambiguous`` when the
  request may have been processed (a timeout after writing it), so the dispatcher reconciles
  by :meth:`Provider.lookup` instead of resending.
- any other :class:`~hexcast.core.errors.ProviderError`: the provider refused the request for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from hexcast.core.pgtext import storable
from sender.providers.status import DeliveryStatus

__all__ = [
    "UNREADABLE",
    "Callbacks",
    "Connected",
    "Deliveries",
    "HttpTransport",
    "Outgoing",
    "Provider",
    "ProviderResult",
    "Receipt",
    "Reply",
    "SendReport",
    "call_each",
    "probe_get",
    "provider_text",
    "retry_after",
]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for a provider. ``expires_at``: when it is no longer worth delivering (the
    adapter asks the provider to give up then, where its API can: ``providers/validity.py``)."""

    client_ref: str
    to: str
    body: str
    expires_at: datetime | None = None
    sender: str | None = None  # the tenant's own sender id, on routes that may send from it


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """A provider's answer for one message. ``part_ids``: the ids it gave each part of a
    multi-part message, in order, when it reports each part by its own id (Vonage, SMPP); the
    first is ``provider_message_id``. Empty otherwise."""

    client_ref: str
    accepted: bool
    provider_message_id: str | None
    error: str | None = None
    part_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class SendReport:
    """Answers for some messages; ``failure`` applies to the messages without an answer."""

    results: list[ProviderResult] = field(default_factory=list)
    failure: ProviderError | None = None


class Provider(Protocol):
    name: str
    max_batch: int
    supports_lookup: bool

    async def send(self, messages: list[Outgoing]) -> SendReport: ...

    async def lookup(self, client_ref: str) -> ProviderResult | None: ...

    async def aclose(self) -> None: ...


T = TypeVar("T")


def _gravity(failure: ProviderError) -> int:
    """How much ``failure`` must speak for the messages left without an answer (see
    :func:`call_each`): 3 ambiguous, 2 rate limited, 1 other retryable, 0 refused for good."""
    if isinstance(failure, ProviderUnavailable) and failure.ambiguous:
        return 3
    if isinstance(failure, ProviderRateLimited):
        return 2
    return 1 if failure.retryable else 0


async def call_each(
    items: Sequence[T], call: Callable[[T], Awaitable[ProviderResult | list[ProviderResult]]], *,
    concurrency: int, go_on_after_ambiguous: bool = False,
) -> SendReport:
    """``call`` each item (a message, or a batch of them) in order, at most ``concurrency`` calls
    in flight, and report their results in the items' order.

    ``call`` answers a result or a batch's results, or raises :class:`ProviderError`; after
    the first one raised no new call starts (a 429 or an outage stops the traffic at once), and
    the messages of the failed calls and of the calls never made share one failure: the
    gravest raised (the first of equals), in this order, each because any rule below it would
    be unsafe for some of those messages:

    1. an ambiguous :class:`ProviderUnavailable`: some may have been taken, and anything else
       would resend them (a second SMS); they are reconciled by lookup or left unknown;
    2. :class:`ProviderRateLimited`: its Retry-After must hold back every resend, or they run
       into the limit again;
    3. any other retryable failure (nothing processed): they go again, on this route or
       another, rather than fail for good unsent;
    4. a refusal for good: they fail.

    With ``go_on_after_ambiguous``, an ambiguous failure does not stop the other calls: for
    an adapter whose calls are independent of each other's connection (SMPP: a lost bind's
    in-flight submits are ambiguous, while the next ones wait for a new bind and get answers of
    their own), so only the messages really in doubt end unknown.
    """
    answers: list[list[ProviderResult]] = [[] for _ in items]
    failure: ProviderError | None = None
    doubtful: ProviderError | None = None  # the first ambiguous one, when the others go on
    pending = iter(enumerate(items))  # shared by the workers: each item is taken once, in order

    async def worker() -> None:
        nonlocal failure, doubtful
        for index, item in pending:
            if failure is not None:
                return
            try:
                answer = await call(item)
            except ProviderError as exc:
                if go_on_after_ambiguous and _gravity(exc) == 3:
                    doubtful = exc if doubtful is None else doubtful
                elif failure is None or _gravity(exc) > _gravity(failure):
                    failure = exc
                continue
            answers[index] = answer if isinstance(answer, list) else [answer]

    await asyncio.gather(*(worker() for _ in range(min(max(1, concurrency), len(items)))))
    return SendReport(results=[r for answer in answers for r in answer],
                      failure=doubtful or failure)


UNREADABLE = (ValueError, KeyError, TypeError, AttributeError)
"""What reading a provider's JSON answer raises when it is cut off or not of the agreed shape."""


_TEXT_MAX = 500


def provider_text(value: object) -> str | None:
    """A provider's id or error as text we can store: a string (a number is read as one), without
    the code points PostgreSQL refuses, at most 500 characters. None stays None."""
    return None if value is None else storable(str(value))[:_TEXT_MAX]


def retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "1")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt read from a provider's callback, in hexcast's terms.

    ``provider_message_id`` is what the adapter answered as the message's id at acceptance
    (a part's receipt names the message it belongs to), ``code`` the provider's own status or
    error code as sent (for the history and the error model), ``part``/``parts`` which part of a
    multi-part message this is (1/1 for a single part). ``by_part_id``: the receipt names one
    part by the id the provider gave that part at acceptance
    (:attr:`ProviderResult.part_ids`), which places it in its message."""

    provider_message_id: str
    status: DeliveryStatus
    code: str | None = None
    client_ref: str | None = None
    part: int = 1
    parts: int = 1
    by_part_id: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A text a handset sent to one of our numbers (an SMPP mobile-originated message):
    ``phone`` the sender, ``to`` our number, ``ref`` an id for dedupe of a redelivery."""

    phone: str
    to: str
    body: str
    ref: str


Deliveries = Callable[[list[Receipt], list[Reply]], Awaitable[None]]
"""Keeps what a provider delivered over its own connection (SMPP): receipts and replies.
Raises when it could not, and the provider has them delivered again."""


@runtime_checkable
class Connected(Protocol):
    """A provider that holds connections of its own to deliver over (SMPP binds)."""

    def deliver_to(self, deliveries: Deliveries) -> None:
        """Where what it delivers goes; its connections open now."""
        ...

    @property
    def live_binds(self) -> int:
        """Its connections up now (0: it cannot send)."""
        ...


class Callbacks(Protocol):
    """A provider's delivery callbacks: who may post them, and what they say."""

    def verify(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether the request is signed by the provider (``url``: the public URL it was
        posted to, as the provider saw it; headers with lower-case names)."""
        ...

    def receipts(self, *, headers: Mapping[str, str], body: bytes) -> list[Receipt]:
        """The receipts of a verified request (intermediate statuses included, as
        :attr:`DeliveryStatus.ACCEPTED`/``SENT``). Raises ``ValueError`` on a body that is not
        of the provider's shape."""
        ...


class HttpTransport:
    """One provider account's HTTP client, with httpx errors translated into hexcast's:

    - a refused or timed-out connection, and HTTP 5xx: :class:`ProviderUnavailable`, not
      processed;
    - an error after the request was written (read timeout, dropped connection):
      :class:`ProviderUnavailable` with ``ambiguous=True``;
    - HTTP 429: :class:`ProviderRateLimited` with the Retry-After.

    Other statuses are returned for the adapter to read (its API's errors are its own)."""

    def __init__(
        self, name: str, base_url: str, *, timeout_s: float, connections: int,
        headers: Mapping[str, str] | None = None, auth: httpx.Auth | tuple[str, str] | None = None,
    ) -> None:
        self.name = name
        self.client = httpx.AsyncClient(
            base_url=base_url, headers=dict(headers or {}), auth=auth,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderUnavailable(f"{self.name}: {type(exc).__name__} on {url}",
                                      unreached=True) from exc
        except httpx.TransportError as exc:  # written, maybe processed: we cannot know
            raise ProviderUnavailable(
                f"{self.name}: {type(exc).__name__} on {url}", ambiguous=True
            ) from exc
        if response.status_code == 429:
            raise ProviderRateLimited(f"{self.name}: rate limited", retry_after=retry_after(response))
        if response.status_code >= 500:
            raise ProviderUnavailable(f"{self.name}: HTTP {response.status_code} on {url}")
        return response

    def unreadable(self, exc: Exception) -> ProviderUnavailable:
        """A success status with a body we cannot read: whatever it did is unknown."""
        return ProviderUnavailable(
            f"{self.name}: unreadable answer ({type(exc).__name__}: {exc})", ambiguous=True)

    async def aclose(self) -> None:
        await self.client.aclose()


async def probe_get(
    name: str, url: str, path: str, read: Callable[[httpx.Response], str], *, timeout_s: float,
    headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None,
    params: Mapping[str, str | int] | None = None, found: Collection[int] = (200,),
) -> str:
    """One authenticated GET of an account's cheapest read (``hexcast providers check
    --probe``), so an operator learns that a route's URL and credentials work before the first
    message needs them; nothing is sent. Answers ``read``'s one-line description of an answer
    whose status is one of ``found``.

    Raises :class:`ProviderError`: "credentials refused" on 401/403 (what a wrong token or
    account id gets), the status and text of any other answer, :class:`HttpTransport`'s errors
    when nothing useful answered (refused, timed out, 5xx, 429), "unreadable answer" when
    ``read`` cannot read it (``read`` may raise its own for an answer that reads as a refusal)."""
    http = HttpTransport(name, url, timeout_s=timeout_s, connections=1, headers=headers, auth=auth)
    try:
        response = await http.request("GET", path, params=params)
    finally:
        await http.aclose()
    if response.status_code in (401, 403):
        raise ProviderError(f"{name}: credentials refused (HTTP {response.status_code})")
    if response.status_code not in found:
        raise ProviderError(f"{name}: HTTP {response.status_code} on {path}: "
                            f"{provider_text(response.text[:200])}")
    try:
        return read(response)
    except UNREADABLE as exc:
        raise ProviderError(f"{name}: unreadable answer ({type(exc).__name__}: {exc})") from exc
