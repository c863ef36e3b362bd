"""Alerting through the real engines: Prometheus and Alertmanager (the installed binaries,
started by ``hexcast.devstack.monitoring`` from the deploy/ configs) watch a real stack.

Route ``p`` (a provider simulator) serves tenants A and B on the transactional lane, route ``q``
(another simulator, receipts 15 s after acceptance) tenant C on the otp lane. When p's receipts
start failing, the receivers (hexcast's own, and a Slack-compatible one) get one error-spike
notification per (tenant, provider) group; when q's breaker is open and its receipts then fail,
q's delivery-rate and error-spike alerts fire in Prometheus but Alertmanager holds them back:
inhibited by the open breaker.

Durations: the production rules hold alerts for minutes against hour- and day-long baselines.
The test renders the SAME rules with every duration divided by ``SCALE`` (a minute becomes a
second, an hour a minute), and Alertmanager's group timings alike; expressions, thresholds and
labels are unchanged. ``deploy/prometheus/tests/`` checks the real timings with promtool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from hexcast.devstack.monitoring import DEPLOY_DIR, Monitoring, Receivers, running_monitoring
from hexcast.testing import (
    OPERATOR_TOKEN,
    Stack,
    TenantRef,
    WebhookRecorder,
    eventually,
    fetch_rows,
    make_settings,
    make_tenant,
    running_sim,
    running_stack,
)
from hexcast.up import write_service_discovery
from providersim import SimConfig

pytestmark = pytest.mark.e2e

PHONE = "+1907555"  # this file's numbers
SCALE = 60
Q_RECEIPT_DELAY_S = 15.0
PROCESSES = {"api": ["api"], "sender-transactional": ["sender", "--lane", "transactional"],
             "sender-otp": ["sender", "--lane", "otp"]}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_RANGE = r"(?:\d+(?:ms|[smhdwy]))+"
_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
       "y": 31_536_000_000}


def scaled(duration: str) -> str:
    """A Prometheus duration divided by ``SCALE`` ("5m" → "5000ms", "1h30m" → "90000ms")."""
    total = sum(int(n) * _MS[unit] for n, unit in _DURATION.findall(duration))
    return f"{max(1, total // SCALE)}ms"


def scaled_expr(expr: str) -> str:
    """``expr`` with its range and offset durations scaled, nothing else changed."""
    expr = re.sub(rf"\[({_RANGE})(?::({_RANGE}))?\]", lambda m: "[" + ":".join(
        scaled(d) for d in m.groups() if d) + "]", expr)  # a range, or a subquery's range:step
    return re.sub(rf"\boffset\s+({_RANGE})", lambda m: f"offset {scaled(m.group(1))}", expr)


def scaled_rules(directory: Path) -> Path:
    """deploy's rules with every duration scaled, written under ``directory``."""
    rules = yaml.safe_load((DEPLOY_DIR / "prometheus" / "rules" / "hexcast.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = scaled_expr(rule["expr"])
            if "for" in rule:
                rule["for"] = scaled(rule["for"])
    path = directory / "hexcast-scaled.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def scaled_route_timing() -> dict[str, str]:
    route = yaml.safe_load((DEPLOY_DIR / "alertmanager" / "alertmanager.yml").read_text())["route"]
    return {k: scaled(route[k]) for k in ("group_wait", "group_interval", "repeat_interval")}


@dataclass
class World:
    stack: Stack
    database_url: str
    monitoring: Monitoring
    slack: WebhookRecorder
    p: str
    q: str
    a: TenantRef
    b: TenantRef
    c: TenantRef
    d: TenantRef

    def prometheus(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.monitoring.prometheus_url}/api/v1/query", params={"query": expr},
                           timeout=10).json()
        assert answer["status"] == "success", answer
        found: list[dict[str, Any]] = answer["data"]["result"]
        return found

    def value(self, expr: str) -> float:
        found = self.prometheus(expr)
        return float(found[0]["value"][1]) if found else 0.0

    def alertmanager(self, alertname: str) -> list[dict[str, Any]]:
        """Alertmanager's alerts of that name, with their status (active, suppressed...)."""
        answer = httpx.get(f"{self.monitoring.alertmanager_url}/api/v2/alerts",
                           params={"filter": f'alertname="{alertname}"'}, timeout=10)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found

    def chat(self) -> list[dict[str, Any]]:
        """The Slack-compatible receiver's messages: title and text of each notification."""
        return [json.loads(r.body)["attachments"][0] for r in self.slack.requests]

    def firing(self, tenant: int | None = None) -> list[dict[str, Any]]:
        params = {"tenant": tenant} if tenant is not None else {}
        answer = httpx.get(f"{self.stack.api_url}/v1/admin/alerts", params=params, headers=OPERATOR,
                           timeout=10)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found


@pytest.fixture(scope="module")
def world(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("alerting")
    a, b, c, d = (asyncio.run(make_tenant(database_url, prefix="alerting")) for _ in range(4))
    with contextlib.ExitStack() as stack, WebhookRecorder() as slack:
        p = stack.enter_context(running_sim(SimConfig(dlr_delay_s=0.2)))
        q = stack.enter_context(running_sim(SimConfig(dlr_delay_s=Q_RECEIPT_DELAY_S)))
        routes = [{"name": "p", "url": p, "token": "sim-token", "lanes": ["transactional"],
                   "tenants": [a.id, b.id], "rate_per_s": 500.0},
                  {"name": "q", "url": q, "token": "sim-token", "lanes": ["otp"],
                   "tenants": [c.id], "rate_per_s": 500.0}]
        settings = make_settings(broker_url, database_url, sender_providers=json.dumps(routes),
                                 sender_breaker_failures=1, sender_breaker_open_s=600.0)
        running = stack.enter_context(running_stack(settings, tmp / "logs", PROCESSES))
        for sim in (p, q):
            httpx.post(f"{sim}/control", json={"dlr_url": f"{running.api_url}/v1/webhooks/dlr"},
                       timeout=10).raise_for_status()
        targets = tmp / "prometheus" / "targets.json"
        write_service_discovery(targets, "127.0.0.1", {
            name: int(urlsplit(url).port or 0) for name, url in running.metrics_urls.items()})
        monitoring = stack.enter_context(running_monitoring(
            tmp, targets_file=targets, rule_files=[scaled_rules(tmp)], interval="1s",
            route_timing=scaled_route_timing(),
            receivers=Receivers(running.api_url, OPERATOR_TOKEN, f"{slack.url}/slack")))
        try:
            yield World(running, database_url, monitoring, slack, p, q, a, b, c, d)
        finally:
            print(running.logs())


def _subscribe(world: World, tenant: TenantRef) -> None:
    """An endpoint of ``tenant`` for alert events (no webhooks worker runs: they stay in the
    outbox, where the test reads them)."""
    answer = httpx.post(f"{world.stack.api_url}/v1/webhooks/endpoints", timeout=10,
                        headers={"X-API-Key": tenant.api_key},
                        json={"url": "http://127.0.0.1:9/alerts",
                              "event_types": ["alert.firing", "alert.resolved"]})
    assert answer.status_code == 201, answer.text


def _outbox(world: World, tenant: TenantRef) -> list[tuple[str, dict[str, Any]]]:
    rows = asyncio.run(fetch_rows(
        world.database_url, "SELECT type, payload::text AS payload FROM webhook_outbox"
        " WHERE tenant_id = $1 AND type LIKE 'alert.%' ORDER BY id", tenant.id))
    return [(r["type"], json.loads(r["payload"])["data"]) for r in rows]


def _notification(status: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "4", "groupKey": "{}:{tenant=\"x\"}", "truncatedAlerts": 0,
            "status": status, "receiver": "operators", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am.example", "alerts": alerts}


def _alert(status: str, fingerprint: str, tenant: str, ends: str) -> dict[str, Any]:
    return {"status": status, "fingerprint": fingerprint,
            "labels": {"alertname": "HexcastProviderErrorSpike", "tenant": tenant,
                       "provider": "twilio-us", "severity": "warning"},
            "annotations": {"summary": f"errors of {tenant}"},
            "startsAt": "2026-11-27T18:00:00.123456789Z", "endsAt": ends,
            "generatorURL": "http://prometheus.example/graph"}


def test_the_receiver_keeps_alerts_and_forwards_a_tenants_as_webhook_events(world: World) -> None:
    d, url = world.d, f"{world.stack.api_url}/v1/admin/alerts/alertmanager"
    _subscribe(world, d)
    zero = "0001-01-01T00:00:00Z"
    firing = _notification("firing", [_alert("firing", "f-d-1", str(d.id), zero),
                                      _alert("firing", "f-none-1", "999999999999", zero)])
    assert httpx.post(url, json=firing, timeout=10).status_code == 401
    for _ in range(2):  # a repeated notification changes nothing
        answer = httpx.post(url, json=firing, headers=OPERATOR, timeout=10)
        assert answer.status_code == 200, answer.text
    shown = world.firing(d.id)
    assert [(a["alertname"], a["tenant_id"], a["provider"], a["severity"], a["summary"], a["ends_at"])
            for a in shown] == [("HexcastProviderErrorSpike", d.id, "twilio-us", "warning",
                                 f"errors of {d.id}", None)]
    unknown = [a for a in world.firing() if a["fingerprint"] == "f-none-1"]
    assert [a["tenant_id"] for a in unknown] == [None]  # the label names no tenant

    resolved = _notification("resolved", [_alert("resolved", "f-d-1", str(d.id),
                                                 "2026-11-27T18:05:00Z")])
    assert httpx.post(url, json=resolved, headers=OPERATOR, timeout=10).json() == {"recorded": 1}
    late = httpx.post(url, json=firing, headers=OPERATOR, timeout=10)  # a retried old notification
    assert late.status_code == 200
    assert world.firing(d.id) == []
    events = _outbox(world, d)
    assert [(t, e["alertname"], e["provider"], e["status"], e["ends_at"]) for t, e in events] == [
        ("alert.firing", "HexcastProviderErrorSpike", "twilio-us", "firing", None),
        ("alert.resolved", "HexcastProviderErrorSpike", "twilio-us", "resolved",
         "2026-11-27T18:05:00.000000Z")]


class Traffic(threading.Thread):
    """Two transactional messages of A and of B (route p) and two otp-lane messages of C
    (route q) every quarter second, until stopped; answers other than 202 are kept in
    ``refused``."""

    def __init__(self, world: World) -> None:
        super().__init__(daemon=True, name="alerting-traffic")
        self.world = world
        self.halt = threading.Event()
        self.refused: list[str] = []

    def run(self) -> None:
        w, n = self.world, 0
        with httpx.Client(base_url=w.stack.api_url, timeout=10) as http:
            while not self.halt.is_set():
                for tenant, first, lane in ((w.a, 0, "transactional"), (w.b, 3000, "transactional"),
                                            (w.c, 6000, "otp")):
                    batch = [{"to": f"{PHONE}{first + 2 * n + i:04d}", "body": f"Update {n}",
                              "lane": lane} for i in range(2)]
                    self._check(http.post("/v1/messages", json={"messages": batch}, headers={
                        "X-API-Key": tenant.api_key, "Idempotency-Key": f"alerting-{n}"}))
                n += 1
                self.halt.wait(0.25)

    def _check(self, answer: httpx.Response) -> None:
        if answer.status_code != 202:
            self.refused.append(f"{answer.status_code} {answer.text[:200]}")


def _groups(world: World, alertname: str, status: str = "FIRING") -> list[tuple[str, str]]:
    """(tenant, provider) of each chat notification of ``status`` that carries ``alertname``."""
    found = []
    for post in world.chat():
        group = re.search(r"tenant=(\S+) provider=(\S+)", post["title"])
        if group and post["title"].startswith(f"[{status}") and alertname in post["text"]:
            found.append((group.group(1), group.group(2)))
    return found


def _inhibited(world: World, alertname: str, **labels: str) -> list[dict[str, Any]] | None:
    """The named alerts Alertmanager holds with ``labels``, once all are inhibited."""
    found = [a for a in world.alertmanager(alertname)
             if all(a["labels"].get(k) == v for k, v in labels.items())]
    held = [a for a in found if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]]
    return found if found and held == found else None


def _delivered(world: World, provider: str, at_least: int) -> None:
    eventually(lambda: world.value(f'sum(hexcast_messages_total{{provider="{provider}",'
                                   f' state="delivered"}})') >= at_least or None, timeout=60)


def _p_fails(world: World, spikes: set[tuple[str, str]]) -> None:
    """p delivers for a moment, then every receipt of p fails: A's and B's errors spike, and
    each (tenant, provider) group is notified."""
    _delivered(world, "p", 20)
    httpx.post(f"{world.p}/control", json={"deliver_fail_rate": 1.0}).raise_for_status()
    eventually(lambda: spikes <= set(_groups(world, "HexcastProviderErrorSpike")) or None,
               timeout=60)


def _q_breaks(world: World, explained: dict[str, dict[str, str]]) -> dict[str, list[dict[str, Any]]]:
    """q delivers for ~10 s (its baseline); its breaker opens and is alerted, and only then do
    the receipts of what q accepted before fail: the ``explained`` alerts fire in Prometheus
    (the error spike only while failures come) and Alertmanager holds them. Returns them."""
    _delivered(world, "q", 40)
    httpx.post(f"{world.q}/control", json={"fail_rate": 1.0}).raise_for_status()
    eventually(lambda: [x for x in world.alertmanager("HexcastBreakerOpen")
                        if x["labels"]["provider"] == "q"] or None, timeout=30)
    httpx.post(f"{world.q}/control", json={"deliver_fail_rate": 1.0}).raise_for_status()
    held: dict[str, list[dict[str, Any]]] = {}

    def all_held() -> bool | None:
        for name, labels in explained.items():
            if name not in held and (found := _inhibited(world, name, **labels)):
                held[name] = found
        return held.keys() == explained.keys() or None

    eventually(all_held, timeout=60, every=0.1)
    group_interval = scaled_route_timing()["group_interval"]
    time.sleep(int(group_interval.removesuffix("ms")) / 1000 + 1)  # the flush that would send them
    return held


def _assert_grouped(world: World, spikes: set[tuple[str, str]]) -> None:
    """One notification per (tenant, provider) group, carrying only that group's alerts."""
    assert sorted(g for g in _groups(world, "HexcastProviderErrorSpike") if g in spikes) == sorted(spikes)
    for post in world.chat():
        group = re.search(r"tenant=(\S+) provider=(\S+)", post["title"])
        assert group, post
        tenant, provider = group.groups()
        for line in filter(None, post["text"].splitlines()):
            assert tenant == "-" or f"tenant {tenant} on {provider}" in line, post
    for tenant, provider in spikes:
        shown = [(x["alertname"], x["provider"]) for x in world.firing(int(tenant))]
        assert ("HexcastProviderErrorSpike", provider) in shown


def _assert_held_back(world: World, held: dict[str, list[dict[str, Any]]]) -> None:
    """The breaker's alert went out; the alerts it explains were held back, never sent."""
    breaker = [x for x in world.alertmanager("HexcastBreakerOpen") if x["labels"]["provider"] == "q"]
    assert {x["fingerprint"] for x in breaker} == {f for found in held.values() for x in found
                                                   for f in x["status"]["inhibitedBy"]}
    assert ("-", "q") in _groups(world, "HexcastBreakerOpen")
    for name in held:
        assert [g for g in _groups(world, name) if g[1] == "q"] == []
    shown = [(x["alertname"], x["provider"]) for x in world.firing()]
    assert ("HexcastBreakerOpen", "q") in shown
    assert ("HexcastDeliveryRateBelowBaseline", "q") not in shown
    assert world.firing(world.c.id) == []


def test_provider_faults_alert_per_tenant_and_provider_and_an_open_breaker_inhibits(
    world: World,
) -> None:
    a, b, c = (str(t.id) for t in (world.a, world.b, world.c))
    spikes = {(a, "p"), (b, "p")}
    _subscribe(world, world.a)
    traffic = Traffic(world)
    traffic.start()
    try:
        _p_fails(world, spikes)
        held = _q_breaks(world, {"HexcastDeliveryRateBelowBaseline": {"provider": "q"},
                                 "HexcastProviderErrorSpike": {"tenant": c, "provider": "q"}})
    finally:
        traffic.halt.set()
        traffic.join(timeout=15)
    assert traffic.refused == []
    _assert_grouped(world, spikes)
    _assert_held_back(world, held)
    # A subscribed to alert events: its spike is in its webhook outbox
    events = [(t, e["alertname"], e["provider"]) for t, e in _outbox(world, world.a)]
    assert ("alert.firing", "HexcastProviderErrorSpike", "p") in events


def test_every_dashboard_query_is_valid_promql(world: World) -> None:
    dashboard = json.loads((DEPLOY_DIR / "grafana" / "dashboards" / "hexcast.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 25
    for expr in exprs:
        concrete = re.sub(r"\$(tenant|provider|lane)\b", ".*", expr.replace("$__rate_interval", "1m"))
        world.prometheus(concrete)  # a parse error is a 400 with status "error"
