"""The console's reads of Prometheus' HTTP API (``/api/v1/query``, ``/api/v1/query_range``):
rates, latency percentiles and error codes over time, which no PostgreSQL table keeps.

Without ``prometheus_url`` nothing is asked and every answer is None ("metrics not
connected"); a Prometheus that fails or is slow (2 s) answers None too, never an error page.
Label values put into a query are escaped (:func:`selector`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from hexcast.core.logging import get_logger

__all__ = ["Prometheus", "Sample", "Series", "by_label", "selector"]

log = get_logger("hexcast.console")
_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(**labels: str | int | None) -> str:
    """``{name="value",...}`` of the labels given (None left out), each value escaped."""
    parts = [f"{k}={_quoted(str(v))}" for k, v in labels.items() if v is not None]
    return "{" + ",".join(parts) + "}"


def _number(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


class Prometheus:
    """One view's reads of Prometheus (``url`` None: not connected); ``async with`` closes
    its connections."""

    def __init__(self, url: str | None) -> None:
        self.url = url.rstrip("/") if url else None
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Prometheus:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def connected(self) -> bool:
        return self.url is not None

    async def _get(self, path: str, params: Mapping[str, str | float]) -> list[Any] | None:
        if self.url is None:
            return None
        if self._client is None:  # one per view (its TLS context is costly to make)
            self._client = httpx.AsyncClient(timeout=_TIMEOUT_S, verify=self.url.startswith("https:"))
        try:
            answer = await self._client.get(f"{self.url}{path}", params=dict(params))
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("prometheus_unavailable", error=repr(exc)[:300])
            return None
        if body.get("status") != "success":
            log.warning("prometheus_query_failed", query=params.get("query"), error=body.get("error"))
            return None
        result = body.get("data", {}).get("result")
        return result if isinstance(result, list) else None

    async def vector(self, query: str) -> list[Sample] | None:
        """The instant vector of ``query`` now."""
        found = await self._get("/api/v1/query", {"query": query})
        if found is None:
            return None
        return [Sample(dict(r.get("metric", {})), _number(r.get("value", [0, "NaN"])[1]))
                for r in found]

    async def vectors(self, queries: Mapping[str, str]) -> dict[str, list[Sample] | None]:
        """Several instant queries at once, by name."""
        names = list(queries)
        answers = await asyncio.gather(*(self.vector(queries[n]) for n in names))
        return dict(zip(names, answers, strict=True))

    async def matrix(self, query: str, *, seconds: float, step_s: float, end: float
                     ) -> list[Series] | None:
        """``query`` over the ``seconds`` before ``end`` (unix seconds), every ``step_s``."""
        found = await self._get("/api/v1/query_range", {
            "query": query, "start": end - seconds, "end": end, "step": step_s})
        if found is None:
            return None
        return [Series(dict(r.get("metric", {})),
                       [(float(t), _number(v)) for t, v in r.get("values", [])]) for r in found]


def by_label(samples: list[Sample] | None, label: str) -> dict[str, float] | None:
    """``samples`` keyed by one label's value (None stays None: not connected)."""
    if samples is None:
        return None
    return {s.labels.get(label, ""): s.value for s in samples}

