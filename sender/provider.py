"""SMS provider adapters. httpx errors are translated into hexcast's provider errors here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from hexcast.errors import ProviderError, ProviderRateLimited, ProviderUnavailable

__all__ = ["BatchProvider", "Outgoing", "ProviderResult"]


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


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "1")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


class BatchProvider:
    """A Sinch/Plivo-like batch API: up to 1,000 destinations per request, lookup by reference."""

    max_batch = 1000
    supports_lookup = True

    def __init__(self, *, name: str, base_url: str, token: str, timeout_s: float) -> None:
        self.name = name
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"{self.name}: timeout on {url}") from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"{self.name}: {type(exc).__name__} on {url}") from exc
        if response.status_code == 429:
            raise ProviderRateLimited(
                f"{self.name}: rate limited", retry_after=_retry_after(response)
            )
        if response.status_code >= 500:
            raise ProviderUnavailable(f"{self.name}: HTTP {response.status_code} on {url}")
        return response

    async def send(self, messages: list[Outgoing]) -> list[ProviderResult]:
        """One batch request; per-destination outcomes in request order."""
        payload = {
            "messages": [{"client_ref": m.client_ref, "to": m.to, "body": m.body} for m in messages]
        }
        response = await self._request("POST", "/v1/batches", json=payload)
        if response.status_code != 200:
            error = ProviderError(f"{self.name}: HTTP {response.status_code}: {response.text}")
            error.retryable = False
            raise error
        return [
            ProviderResult(
                client_ref=item["client_ref"],
                accepted=item.get("status") == "accepted",
                provider_message_id=item.get("provider_message_id"),
                error=item.get("error"),
            )
            for item in response.json()["results"]
        ]

    async def lookup(self, client_ref: str) -> ProviderResult | None:
        """What the provider knows of a reference; None when it never saw it."""
        response = await self._request("GET", f"/v1/messages/by-ref/{client_ref}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ProviderUnavailable(f"{self.name}: lookup HTTP {response.status_code}")
        item = response.json()
        return ProviderResult(
            client_ref=client_ref, accepted=True,
            provider_message_id=item.get("provider_message_id"),
        )
