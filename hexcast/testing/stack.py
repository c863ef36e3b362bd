"""The hexcast processes as real subprocesses, for end-to-end tests, and the broker they use.

A :class:`Stack` starts ``hexcast <command>`` children (provider-sim, api and workers by
default) with one settings object, on free ports, and waits for the HTTP ones to answer;
``stop()`` ends them and ``logs()`` tells what they said when a test fails::

    settings = make_settings(broker_url, database_url)
    stack = Stack(settings, tmp_path).start()
    try:
        ...  # post to stack.api_url, read stack.ledger()
    finally:
        stack.stop()
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hexcast.core.kafka import delete_topics
from hexcast.core.settings import Settings
from hexcast.core.topics import create_topics, topic_specs
from hexcast.devstack.broker import EmbeddedBroker
from hexcast.devstack.procs import free_port, hexcast_process, wait_http
from hexcast.testing.scrape import Samples, scrape
from hexcast.testing.waiting import eventually

__all__ = ["CAMPAIGN_PROCESSES", "DEFAULT_PROCESSES", "Stack", "matcher_metrics", "running_broker",
           "running_stack", "wait_matcher_knows"]


DEFAULT_PROCESSES: dict[str, list[str]] = {
    "provider-sim": ["provider-sim"],
    "api": ["api"],
    "matcher": ["matcher"],
    "sender-geo": ["sender", "--lane", "geo"],
}

CAMPAIGN_PROCESSES: dict[str, list[str]] = {
    "provider-sim": ["provider-sim"],
    "api": ["api"],
    "sender-bulk": ["sender", "--lane", "bulk"],
    "scheduler": ["scheduler"],
}
"""What a campaign needs end to end: the api, one scheduler and one bulk sender."""


class Stack:
    """provider-sim, api and workers (default: matcher and geo sender), wired to one settings
    object; ``processes`` (name → hexcast arguments) picks others. provider-sim and api are
    waited for when present."""

    def __init__(
        self, settings: Settings, log_dir: Path, processes: dict[str, list[str]] | None = None
    ) -> None:
        api_port, sim_port = free_port(), free_port()
        self.settings = settings.model_copy(update={
            "api_port": api_port,
            "api_public_url": f"http://127.0.0.1:{api_port}",
            "sim_port": sim_port,
            "provider_url": f"http://127.0.0.1:{sim_port}",
            "sim_dlr_delay_s": 0.2,
        })
        self.api_url = self.settings.api_public_url
        self.sim_url = self.settings.provider_url
        env = self.settings.to_env()
        self.metrics_urls: dict[str, str] = {}
        self.children = {}
        for name, args in (processes or DEFAULT_PROCESSES).items():
            port = free_port()
            self.metrics_urls[name] = f"http://127.0.0.1:{port}/metrics"
            self.children[name] = hexcast_process(
                name, args, env={**env, "HEXCAST_METRICS_PORT": str(port)}, log_dir=log_dir)

    def start(self) -> Stack:
        for child in self.children.values():
            child.spawn()
        if "provider-sim" in self.children:
            wait_http(f"{self.sim_url}/health", child=self.children["provider-sim"])
        if "api" in self.children:
            wait_http(f"{self.api_url}/health", child=self.children["api"])
        return self

    def stop(self) -> None:
        for child in self.children.values():
            child.terminate(grace_s=10)

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{c.tail()}" for n, c in self.children.items())

    def scrape(self, *names: str) -> Samples:
        """The metrics of the named processes (all when none is named), summed by labels."""
        return scrape([self.metrics_urls[n] for n in names or tuple(self.metrics_urls)])

    def ledger(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.sim_url}/ledger", params={"limit": 10000})
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@contextmanager
def running_broker() -> Iterator[str]:
    """A Kafka broker's URL: ``HEXCAST_TEST_BROKER_URL`` if set, else an embedded broker
    started for the ``with`` block."""
    external = os.environ.get("HEXCAST_TEST_BROKER_URL")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.url


@contextmanager
def running_stack(settings: Settings, log_dir: Path, processes: dict[str, list[str]] | None = None
                  ) -> Iterator[Stack]:
    """A started :class:`Stack` for the ``with`` block, on topics of its settings created before
    and deleted after (what a test module's stack fixture does)."""
    asyncio.run(create_topics(settings))
    stack = Stack(settings, log_dir, processes)
    try:
        yield stack.start()
    finally:
        stack.stop()
        asyncio.run(delete_topics(settings.bootstrap_servers, topic_specs(settings)))


def matcher_metrics(stack: Stack, tenant_id: int) -> dict[str, int]:
    """One tenant's matcher counters, scraped from the stack's matcher processes (those named
    ``matcher…``; a restarted matcher counts from zero): totals by name (``visits_total``),
    suppressions by reason (``no_geofence``)."""
    urls = [url for name, url in stack.metrics_urls.items() if name.startswith("matcher")]
    try:
        samples = scrape(urls)
    except httpx.TransportError:  # a matcher (re)starting: it has counted nothing yet
        samples = Samples()
    tenant = str(tenant_id)
    found: dict[str, int] = {}
    for name in ("visits", "matched", "triggered", "budget_released"):
        found[f"{name}_total"] = int(samples.value(f"hexcast_matcher_{name}_total", tenant=tenant))
    for labels, value in samples.select("hexcast_matcher_suppressed_total", tenant=tenant).items():
        found[dict(labels)["reason"]] = int(value)
    return found


def wait_matcher_knows(stack: Stack, tenant_id: int, visit_nowhere: Callable[[], None]) -> None:
    """Wait until the matcher holds a just-created recipient's profile. It comes on the
    ``profiles`` topic, which the matcher may read after a visit posted right away (that visit
    then counts ``no_profile``): post one-event visits to a place with no store until one counts
    ``no_geofence``, then until the matcher counted all of them. Every visit posted before must
    already be counted, as the wait compares counts."""
    start = matcher_metrics(stack, tenant_id)
    posted = 0

    def check() -> bool | None:
        nonlocal posted
        visit_nowhere()
        posted += 1
        return matcher_metrics(stack, tenant_id).get("no_geofence", 0) > start.get(
            "no_geofence", 0) or None

    eventually(check, timeout=30, every=0.3)
    total = start.get("visits_total", 0) + posted
    eventually(lambda: matcher_metrics(stack, tenant_id).get("visits_total", 0) >= total or None,
               timeout=90)
