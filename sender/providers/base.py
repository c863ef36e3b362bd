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

from dataclasses import dataclass, field
from typing import Protocol

import httpx

from hexcast.core.errors import ProviderError
from hexcast.core.pgtext import storable

__all__ = ["UNREADABLE", "Outgoing", "Provider", "ProviderResult", "SendReport", "provider_text",
           "retry_after"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    client_ref: str
    to: str
    body: str


@dataclass(frozen=True, slots=True)
class ProviderResult:
    client_ref: str
    accepted: bool
    provider_message_id: str | None
    error: str | None = None


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
