"""The generic JSON API (the provider simulator's own dialect), over httpx; httpx errors are
translated into hexcast's provider errors here.

Two API shapes: :class:`BatchProvider` (Sinch/Plivo-like, up to 1,000 destinations per request)
and :class:`SingleProvider` (Twilio-like, one message per request, sent concurrently). Both
answer :meth:`send` with a :class:`SendReport`: the messages the provider answered for, and the
error that applies to every other message of the call (none of them was answered).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from hexcast.core.errors import ProviderError, ProviderRateLimited, ProviderUnavailable
from sender.models import ProviderSpec
from sender.providers.base import (
    UNREADABLE,
    Outgoing,
    ProviderResult,
    SendReport,
    provider_text,
    retry_after,
)

__all__ = ["BatchProvider", "SingleProvider"]


class _HttpProvider:
    """Shared HTTP plumbing: auth, error translation, lookup by client reference."""

    max_batch = 1000

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, connections: int) -> None:
        self.name = spec.name
        self.supports_lookup = spec.lookup
        self._client = httpx.AsyncClient(
            base_url=spec.url,
            headers={"Authorization": f"Bearer {spec.token}"},
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderUnavailable(f"{self.name}: {type(exc).__name__} on {url}") from exc
        except httpx.TransportError as exc:  # written, maybe processed: we cannot know
            raise ProviderUnavailable(
                f"{self.name}: {type(exc).__name__} on {url}", ambiguous=True
            ) from exc
        if response.status_code == 429:
            raise ProviderRateLimited(
                f"{self.name}: rate limited", retry_after=retry_after(response)
            )
        if response.status_code >= 500:
            raise ProviderUnavailable(f"{self.name}: HTTP {response.status_code} on {url}")
        return response

    def _unreadable(self, exc: Exception) -> ProviderUnavailable:
        """A success status with a body we cannot read: whatever it did is unknown."""
        return ProviderUnavailable(
            f"{self.name}: unreadable answer ({type(exc).__name__}: {exc})", ambiguous=True)

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        """What the provider knows of a reference; None when it never saw it."""
        response = await self._request("GET", f"/v1/messages/by-ref/{client_ref}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProviderUnavailable(f"{self.name}: lookup HTTP {response.status_code}")
        try:
            pmid = provider_text(response.json().get("provider_message_id"))
        except UNREADABLE as exc:
            raise self._unreadable(exc) from exc
        return ProviderResult(client_ref=client_ref, accepted=True, provider_message_id=pmid)


class BatchProvider(_HttpProvider):
    """A Sinch/Plivo-like batch API: up to 1,000 destinations per request."""

    async def send(self, messages: list[Outgoing]) -> SendReport:
        """One batch request; per-destination outcomes, or one failure for all."""
        payload = {
            "messages": [{"client_ref": m.client_ref, "to": m.to, "body": m.body} for m in messages]
        }
        try:
            response = await self._request("POST", "/v1/batches", json=payload)
        except ProviderError as exc:
            return SendReport(failure=exc)
        if response.status_code != 200:
            error = ProviderError(f"{self.name}: HTTP {response.status_code}: {provider_text(response.text)}")
            error.retryable = False
            return SendReport(failure=error)
        try:
            return SendReport(results=[
                ProviderResult(
                    client_ref=item["client_ref"],
                    accepted=item.get("status") == "accepted",
                    provider_message_id=provider_text(item.get("provider_message_id")),
                    error=provider_text(item.get("error")),
                )
                for item in response.json()["results"]
            ])
        except UNREADABLE as exc:  # it answered 200: it may have taken every message
            return SendReport(failure=self._unreadable(exc))


class SingleProvider(_HttpProvider):
    """A Twilio-like API: one message per request, ``concurrency`` requests in flight.

    After the first failure no new request starts; messages not yet requested share that
    failure, so a 429 or an outage stops the traffic at once.
    """

    def __init__(self, spec: ProviderSpec, *, timeout_s: float, concurrency: int) -> None:
        super().__init__(spec, timeout_s=timeout_s, connections=concurrency)
        self._concurrency = concurrency

    async def send(self, messages: list[Outgoing]) -> SendReport:
        report = SendReport()
        queue = list(reversed(messages))

        async def worker() -> None:
            while queue and report.failure is None:
                msg = queue.pop()
                try:
                    report.results.append(await self._one(msg))
                except ProviderError as exc:
                    if report.failure is None or (exc.retryable and not report.failure.retryable):
                        report.failure = exc
                    return

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(messages)))))
        return report

    async def _one(self, msg: Outgoing) -> ProviderResult:
        body = {"client_ref": msg.client_ref, "to": msg.to, "body": msg.body}
        response = await self._request("POST", "/v1/messages", json=body)
        taken = response.status_code in (200, 201)
        try:
            item = response.json()
            pmid = provider_text(item.get("provider_message_id"))
            error = provider_text(item.get("error", "rejected"))
        except UNREADABLE as exc:
            if taken:
                raise self._unreadable(exc) from exc
            pmid, error = None, "rejected"
        if taken:
            return ProviderResult(msg.client_ref, True, pmid)
        if response.status_code in (400, 422):
            return ProviderResult(msg.client_ref, False, None, error)
        failure = ProviderError(f"{self.name}: HTTP {response.status_code}: {provider_text(response.text)}")
        failure.retryable = False
        raise failure

