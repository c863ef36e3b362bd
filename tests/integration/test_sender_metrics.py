"""The sender's and the webhooks worker's metrics (issue 23's catalogue) from the processes that
do the work, each scraped on its own ``/metrics`` port, against PostgreSQL.

One stack for the module (provider-sim, api, transactional and otp senders, webhooks worker)
and one short run: a STOP and a HELP reply (their confirmations go out on the otp lane), a
batch of transactional messages (one to the number that said STOP: suppressed; one with
``send_at``: deferred), a message the provider's receipt fails (``undeliverable``), one whose
calls the provider refuses with 503 until it is given up and dead-lettered, and two webhook
endpoints, one answering and one unreachable (given up after two attempts). Numbers start
with +1646555.

The database is the session's: the senders also send (their start-up sweep) rows that earlier
modules left ``queued``/``sending`` in the transactional and otp lanes, of other tenants. Series
with a tenant label are read for this module's tenant; the receipt latency histogram has only a
provider label, so it is compared with PostgreSQL's receipts for the route, whoever's messages
they settled (the route's name is this module's own).

That a scrape runs no query is checked in ``tests/unit/test_sender_metrics.py``: the metrics
are plain prometheus-client objects with no collector of their own, so a scrape only reads
memory; the gauges that need a query are refreshed by their process on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from hexcast.devstack.procs import free_port
from hexcast.testing import (
    Stack,
    TenantRef,
    WebhookRecorder,
    eventually,
    fetch_rows,
    make_settings,
    make_tenant,
    running_stack,
)
from hexcast.testing.scrape import Samples
from tests.integration.webhookkit import add_endpoint

pytestmark = pytest.mark.e2e

PROCESSES = {
    "provider-sim": ["provider-sim"],
    "api": ["api"],
    "sender-transactional": ["sender", "--lane", "transactional"],
    "sender-otp": ["sender", "--lane", "otp"],
    "webhooks": ["webhooks"],
}
FINAL = ("delivered", "failed", "suppressed", "deferred", "unknown", "expired")
PROVIDER = "metrics-sim"
"""The route's name: no other module's messages carry it in the shared database."""

# Every metric of the catalogue's sender and webhooks sections → the labels of its samples.
CATALOGUE: dict[str, set[str]] = {
    "hexcast_messages_total": {"tenant", "lane", "provider", "state"},
    "hexcast_segments_total": {"tenant", "lane", "provider"},
    "hexcast_provider_request_seconds_count": {"provider", "operation", "outcome"},
    "hexcast_receipt_latency_seconds_count": {"provider"},
    "hexcast_provider_errors_total": {"tenant", "provider", "code"},
    "hexcast_provider_throttled_total": {"provider"},
    "hexcast_breaker_state": {"provider", "state"},
    "hexcast_route_drained": {"provider"},
    "hexcast_route_disabled": {"provider"},
    "hexcast_rate_limit_waits_total": {"lane", "limit"},
    "hexcast_rate_limit_wait_seconds_total": {"lane", "limit"},
    "hexcast_dlq_letters_total": {"lane", "reason"},
    "hexcast_dlq_depth": set(),
    "hexcast_deferred_total": {"tenant", "lane", "reason"},
    "hexcast_optouts_total": {"tenant", "campaign"},
    "hexcast_help_requests_total": {"tenant"},
    "hexcast_webhook_backlog": {"tenant"},
    "hexcast_webhook_attempts_total": {"tenant", "endpoint", "outcome"},
    "hexcast_webhook_failures_total": {"tenant", "endpoint"},
    "hexcast_webhook_endpoint_failing": {"tenant", "endpoint"},
}
SERVED_ONLY = ("hexcast_smpp_live_binds",)
"""Declared by every sender, with series only for SMPP routes (none here: see test_smpp_e2e)."""


def phone(n: int) -> str:
    return f"+1646555{n:04d}"


@dataclass(frozen=True)
class Run:
    """What the module's run did: its stack, tenant, endpoints and the final scrape."""

    stack: Stack
    tenant: TenantRef
    good: int
    bad: int
    samples: Samples

    def value(self, name: str, **labels: str) -> float:
        return self.samples.value(name, tenant=str(self.tenant.id), **labels)


@pytest.fixture(scope="module")
def stack(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    settings = make_settings(broker_url, database_url, provider_name=PROVIDER,
                             provider_max_attempts=2, sender_breaker_failures=50,
                             webhook_retry_schedule_s=[0, 0.2])
    with running_stack(settings, tmp_path_factory.mktemp("sender-metrics"), PROCESSES) as running:
        yield running


@pytest.fixture(scope="module")
def run(stack: Stack, database_url: str) -> Iterator[Run]:
    tenant = asyncio.run(make_tenant(database_url, prefix="metrics"))
    with WebhookRecorder() as hook, httpx.Client(
            base_url=stack.api_url, timeout=10, headers={"X-API-Key": tenant.api_key}) as api:
        good, bad = asyncio.run(_endpoints(database_url, tenant.id, hook.url))
        _work(stack, api, database_url, tenant)
        yield Run(stack, tenant, good, bad, _settled(stack, tenant, bad))


async def _endpoints(dsn: str, tenant_id: int, url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        good, _ = await add_endpoint(conn, tenant_id=tenant_id, url=url,
                                     types=["message.accepted", "message.delivered"])
        bad, _ = await add_endpoint(conn, tenant_id=tenant_id, types=["message.failed"],
                                    url=f"http://127.0.0.1:{free_port()}/closed")
    finally:
        await conn.close()
    return good, bad


def _work(stack: Stack, api: httpx.Client, dsn: str, tenant: TenantRef) -> None:
    for n, body in ((1, "STOP"), (2, "HELP")):
        _reply(stack, tenant.id, phone(n), body)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _send(api, "metrics-1", *({"to": phone(n), "body": f"order {n}"} for n in (1, 3, 4, 5)),
          {"to": phone(6), "body": "later", "send_at": later})
    eventually(lambda: _states(dsn, tenant.id) == {
        ("otp", "delivered"): 2, ("transactional", "delivered"): 3,
        ("transactional", "suppressed"): 1, ("transactional", "deferred"): 1} or None)
    _control(stack, deliver_fail_rate=1.0)
    _send(api, "metrics-2", {"to": phone(7), "body": "lost in the network"})
    eventually(lambda: _states(dsn, tenant.id).get(("transactional", "failed")) == 1 or None)
    _control(stack, deliver_fail_rate=0.0, fail_rate=1.0)
    _send(api, "metrics-3", {"to": phone(8), "body": "refused"})
    eventually(lambda: _states(dsn, tenant.id).get(("transactional", "failed")) == 2 or None)
    _control(stack, fail_rate=0.0)


def _settled(stack: Stack, tenant: TenantRef, bad: int) -> Samples:
    """The scrape once the webhooks gave up on the bad endpoint and the timed gauges caught up."""
    def done() -> Samples | None:
        samples = stack.scrape()
        mine = {"tenant": str(tenant.id)}
        ready = (samples.value("hexcast_webhook_failures_total", endpoint=str(bad), **mine) == 2
                 and samples.value("hexcast_webhook_backlog", **mine) == 0
                 and samples.value("hexcast_webhook_endpoint_failing", endpoint=str(bad), **mine)
                 and stack.scrape("sender-transactional").value("hexcast_dlq_depth") == 1)
        return samples if ready else None

    return eventually(done, timeout=60, every=0.5)


def _reply(stack: Stack, tenant_id: int, number: str, body: str) -> None:
    answer = httpx.post(f"{stack.api_url}/v1/webhooks/inbound/{tenant_id}",
                        json={"from": number, "body": body, "id": f"reply-{number}"},
                        headers={"Authorization": f"Bearer {stack.settings.dlr_webhook_token}"})
    assert answer.status_code == 200, answer.text


def _send(api: httpx.Client, key: str, *messages: dict[str, Any]) -> None:
    answer = api.post("/v1/messages", headers={"Idempotency-Key": key},
                      json={"messages": list(messages)})
    assert answer.status_code == 202, answer.text


def _control(stack: Stack, **changes: float) -> None:
    httpx.post(f"{stack.sim_url}/control", json=changes).raise_for_status()


def _receipts(stack: Stack, dsn: str, tenant_id: int) -> tuple[float, int, int]:
    """The route's receipt latency observations; the messages a receipt settled (of any
    tenant, before or after their acceptance was committed), as PostgreSQL has them; the
    tenant's messages a receipt settled. Read once nothing of the route is in flight and no
    receipt was applied between the two reads of PostgreSQL around the scrape."""
    receipts = ("FROM message_events e JOIN messages m ON m.id = e.message_id WHERE"
                " m.provider = $1 AND e.actor = 'dlr-webhook'"
                " AND e.to_state::text IN ('delivered', 'failed', 'expired')")
    sql = (f"SELECT (SELECT count(*) {receipts}) AS settled,"
           f" (SELECT count(*) {receipts} AND m.tenant_id = $2) AS mine,"
           " (SELECT count(*) FROM messages WHERE provider = $1"
           "  AND state::text IN ('sending', 'accepted')) AS in_flight")

    def quiet() -> tuple[float, int, int] | None:
        [before] = asyncio.run(fetch_rows(dsn, sql, PROVIDER, tenant_id))
        seen = stack.scrape().value("hexcast_receipt_latency_seconds_count", provider=PROVIDER)
        [after] = asyncio.run(fetch_rows(dsn, sql, PROVIDER, tenant_id))
        calm = before["in_flight"] == 0 and before["settled"] == after["settled"]
        return (seen, after["settled"], after["mine"]) if calm else None

    return eventually(quiet, timeout=30, every=0.5)


def _states(dsn: str, tenant_id: int) -> dict[tuple[str, str], int]:
    rows = asyncio.run(fetch_rows(dsn, "SELECT lane::text, state::text, count(*) AS n FROM messages"
                                       " WHERE tenant_id = $1 GROUP BY 1, 2", tenant_id))
    return {(r["lane"], r["state"]): r["n"] for r in rows}


def _labels(samples: Samples, name: str) -> set[frozenset[str]]:
    return {frozenset(k for k, _ in key) for key in samples.select(name)}


def test_every_metric_of_the_catalogue_is_served_with_its_labels(run: Run) -> None:
    for name, labels in CATALOGUE.items():
        assert _labels(run.samples, name) == {frozenset(labels)}, name
    text = "".join(httpx.get(url, timeout=10).text for url in run.stack.metrics_urls.values())
    for name in SERVED_ONLY:
        assert f"# TYPE {name} gauge" in text


def test_message_counts_by_lane_state_and_provider_are_postgresql_s(run: Run, database_url: str
                                                                   ) -> None:
    rows = asyncio.run(fetch_rows(
        database_url,
        "SELECT lane::text, state::text, COALESCE(provider, '') AS provider, count(*) AS n,"
        " count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent,"
        " COALESCE(sum(segments) FILTER (WHERE sent_at IS NOT NULL), 0) AS segments"
        " FROM messages WHERE tenant_id = $1 GROUP BY 1, 2, 3", run.tenant.id))
    final = {(r["lane"], r["state"], r["provider"]): r["n"] for r in rows if r["state"] in FINAL}
    counted = {(dict(k)["lane"], dict(k)["state"], dict(k)["provider"]): v
               for k, v in run.samples.select("hexcast_messages_total",
                                              tenant=str(run.tenant.id)).items()
               if dict(k)["state"] in FINAL and v}
    assert counted == final
    assert len(final) == 5  # otp delivered; transactional delivered, suppressed, deferred, failed
    for lane, provider in {(r["lane"], r["provider"]) for r in rows if r["sent"]}:
        mine = [r for r in rows if (r["lane"], r["provider"]) == (lane, provider)]
        labels = {"lane": lane, "provider": provider}
        assert run.value("hexcast_messages_total", state="accepted", **labels) == sum(
            r["sent"] for r in mine)
        assert run.value("hexcast_segments_total", **labels) == sum(r["segments"] for r in mine)


def test_provider_calls_receipts_errors_and_dead_letters(run: Run) -> None:
    provider = run.stack.settings.provider_name
    calls = "hexcast_provider_request_seconds_count"
    assert run.samples.value(calls, provider=provider, operation="submit", outcome="ok") >= 3
    assert run.samples.value(calls, provider=provider, operation="submit", outcome="error") == 2
    assert run.value("hexcast_provider_errors_total", provider=provider,
                     code="undeliverable") == 1
    assert run.samples.value("hexcast_provider_errors_total") == 1  # a 503 is no provider code
    assert run.samples.value("hexcast_dlq_letters_total", lane="transactional",
                             reason="gave_up") == 1
    assert run.samples.value("hexcast_dlq_letters_total") == 1
    assert run.samples.value("hexcast_breaker_state", provider=provider, state="closed") == 2
    assert run.samples.value("hexcast_route_drained") == run.samples.value(
        "hexcast_route_disabled") == 0


def test_receipt_latency_observes_each_receipt_that_settled_an_accepted_message(
        run: Run, database_url: str) -> None:
    # One observation a message a receipt settled after its acceptance, exactly as PostgreSQL
    # applied them: the tenant's and any other tenant's row the senders swept up and sent (CI
    # once counted 9 against the tenant's 6 final moves: such rows, no message seen twice).
    seen, settled, mine = _receipts(run.stack, database_url, run.tenant.id)
    assert seen == settled
    assert mine == 6  # the tenant's 5 delivered and 1 failed came by receipt


def test_replies_deferrals_and_webhooks(run: Run) -> None:
    assert run.value("hexcast_optouts_total", campaign="") == 1
    assert run.value("hexcast_help_requests_total") == 1
    assert run.value("hexcast_deferred_total", lane="transactional", reason="send_at") == 1
    good, bad = str(run.good), str(run.bad)
    assert run.value("hexcast_webhook_attempts_total", endpoint=good, outcome="ok") >= 6
    assert run.value("hexcast_webhook_attempts_total", endpoint=bad, outcome="unreachable") == 4
    assert run.value("hexcast_webhook_failures_total", endpoint=good) == 0
    assert run.value("hexcast_webhook_endpoint_failing", endpoint=good) == 0
    assert run.value("hexcast_webhook_endpoint_failing", endpoint=bad) == 1
