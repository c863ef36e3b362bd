"""Reading processes' Prometheus metrics in tests: scrape, then sum what matches labels.

::

    samples = stack.scrape("sender-bulk", "api")
    assert samples.value("hexcast_messages_total", lane="bulk", state="accepted") == 500
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "scrape"]


@dataclass(frozen=True)
class Samples:
    """Samples of one or more scrapes: (sample name, sorted labels) → value, summed over the
    processes scraped (counters of several processes add up)."""

    values: Mapping[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def select(self, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every series of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return {key: v for (n, key), v in self.values.items()
                if n == name and wanted <= set(key)}

    def value(self, name: str, **labels: str) -> float:
        """The sum of the series of ``name`` that carry ``labels`` (0 when none does)."""
        return sum(self.select(name, **labels).values())

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(key)[label] for key in self.select(name) if label in dict(key)}

    def names(self) -> set[str]:
        return {n for n, _ in self.values}


def parse(text: str, into: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            into[key] = into.get(key, 0.0) + sample.value


def scrape(urls: Iterable[str], *, headers: Mapping[str, str] | None = None) -> Samples:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for url in urls:
        response = httpx.get(url, timeout=10, headers=dict(headers or {}))
        response.raise_for_status()
        parse(response.text, found)
    return Samples(found)
