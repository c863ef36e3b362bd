"""Campaigns end to end: real api, two schedulers, a bulk sender and provider-sim.

Covers bad input (422 naming the field), Idempotency-Key, recipient import with bad rows and a
retry, preview numbers equal to what a run releases, pause/resume/cancel, and a 50,000-recipient
run released by two schedulers (one of them killed with SIGKILL mid-wave in the second run):
every recipient exactly once in the provider ledger, no gaps.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from hexcast.core.cache import Keys, connect_redis
from hexcast.core.control import RunControl, RunState
from hexcast.testing import Stack, TenantRef, eventually, make_settings, make_tenant, running_stack
from sender.keys import bulk_key

pytestmark = pytest.mark.e2e

PROCESSES = {
    "provider-sim": ["provider-sim"],
    "api": ["api"],
    "sender-bulk": ["sender", "--lane", "bulk"],
    "scheduler-1": ["scheduler"],
    "scheduler-2": ["scheduler"],
}
ZONES = ["Pacific/Honolulu", "America/Phoenix", "America/Chicago", "Asia/Kolkata", "Australia/Lord_Howe"]
CONSENT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def stack(broker_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(
        broker_url, database_url, provider_rate_per_s=100_000.0, provider_burst=5_000.0,
        sim_rate_per_s=100_000.0, scheduler_lease_s=3.0, scheduler_poll_s=0.5, sender_bulk_share=1.0,
        # rows a killed scheduler's overlap leaves queued are swept within the tests' waits
        # (CI saw 500 of a chunk left queued once; the default grace is 300 s)
        sender_reconcile_grace_s=20.0, sender_sweep_interval_s=5.0,
        sender_pause_recheck_s=2.0,  # a paused run's messages are looked at again soon after its resume
    )
    with running_stack(settings, tmp_path_factory.mktemp("logs"), PROCESSES) as running:
        yield running


def _tenant(dsn: str) -> TenantRef:
    return asyncio.run(make_tenant(dsn, prefix="camp"))


def _client(stack: Stack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.api_url, headers={"X-API-Key": key}, timeout=30)


async def _copy_audience(dsn: str, tenant_id: int, n: int, prefix: str, zones: list[str]) -> None:
    """Bulk-insert ``n`` consenting recipients with COPY (zones round-robin)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "recipients", columns=["tenant_id", "user_id", "phone", "time_zone", "first_name", "consent_at"],
            records=[(tenant_id, f"u{i}", f"{prefix}{i:07d}", zones[i % len(zones)], f"N{i}", CONSENT)
                     for i in range(n)],
        )
    finally:
        await conn.close()


def _campaign(api: httpx.Client, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Holiday", "body": "Hi {first_name}, 20% off today",
                            "segment": {"everyone": True}, "run_at": "2030-11-26T09:00:00",
                            "time_zone": "America/Chicago"}
    body.update(overrides)
    response = api.post("/v1/campaigns", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _ledger(stack: Stack, phone_prefix: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        params = {"after": after, "limit": 10_000}
        page = httpx.get(f"{stack.sim_url}/ledger", params=params, timeout=30).json()
        items.extend(i for i in page["items"] if i["to"].startswith(phone_prefix))
        after += len(page["items"])
        if after >= page["total"]:
            return items


def _runs(api: httpx.Client, campaign_id: int) -> list[dict[str, Any]]:
    response = api.get(f"/v1/campaigns/{campaign_id}/runs")
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()
    return runs


def _released(api: httpx.Client, campaign_id: int) -> dict[str, Any] | None:
    runs = _runs(api, campaign_id)
    return runs[-1] if runs and runs[-1]["released_at"] else None


# ------------------------------------------------------------------------------ bad input
BAD_CAMPAIGNS = [
    ({"cron": "61 9 * * *", "run_at": None}, "cron"),
    ({"time_zone": "Mars/Olympus"}, "time_zone"),
    ({"deadline": "2030-11-26T08:00:00"}, "deadline"),
    ({"segment": {}}, "segment"),
    ({"body": "x" * 1601}, "body"),
    ({"body": "Hi {nickname}"}, "nickname"),
    ({"segment": {"time_zones": ["Nowhere/City"]}}, "time_zones"),
    ({"segment": {"everyone": True, "holdout_pct": 80}}, "holdout_pct"),
    ({"max_rate": -1}, "max_rate"),
    ({"lane": "otp"}, "lane"),
    ({"body": "x" * 1000}, "body"),  # 7 segments; the tenant allows 6 (refused at creation)
    ({"body": "Hi {first_name} " + "y" * 900}, "body"),  # 6 segments only with a short name
    ({"run_at": "2026-01-05T09:00:00"}, "run_at 2026-01-05T09:00:00 has passed in America/Chicago"),
    ({"run_at": "2026-01-05T09:00:00", "time_mode": "recipient_local"},
     "has passed in every time zone"),
]


def test_bad_campaigns_are_422_naming_the_field(stack: Stack, database_url: str) -> None:
    key = _tenant(database_url).api_key
    with _client(stack, key) as api:
        for change, field in BAD_CAMPAIGNS:
            body = {"name": "x", "body": "Hi", "segment": {"everyone": True},
                    "run_at": "2030-11-26T09:00:00", "time_zone": "America/Chicago", **change}
            response = api.post("/v1/campaigns", json=body)
            assert response.status_code == 422, (change, response.text)
            assert field in response.text, (change, response.text)
        assert api.post("/v1/campaigns", content=b"{not json",
                        headers={"content-type": "application/json"}).status_code == 422
        assert api.post("/v1/templates", json={"name": "t", "body": "{oops"}).status_code == 422
        too_long = api.post("/v1/templates", json={"name": "t", "body": "x" * 1000})
        assert too_long.status_code == 422
        assert "this tenant allows 6" in too_long.text
        assert api.get("/v1/campaigns").json() == []


def test_idempotency_key_replays_or_conflicts(stack: Stack, database_url: str) -> None:
    key = _tenant(database_url).api_key
    with _client(stack, key) as api:
        body = {"name": "Welcome", "body": "Hello {first_name}"}
        first = api.post("/v1/templates", json=body, headers={"Idempotency-Key": "k1"})
        again = api.post("/v1/templates", json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        other = api.post("/v1/templates", json={**body, "name": "Other"}, headers={"Idempotency-Key": "k1"})
        assert other.status_code == 409
        assert len(api.get("/v1/templates").json()) == 1
        template = first.json()
        assert template["placeholders"] == ["first_name"]
        assert (template["encoding"], template["segments"]) == ("GSM-7", 1)
        made = _campaign(api, body=None, template_id=template["id"])
        assert made["body"] == "Hello {first_name}"
        # update and delete
        renamed = api.patch(f"/v1/campaigns/{made['id']}", json={"name": "Renamed", "max_rate": 50})
        assert (renamed.json()["name"], renamed.json()["max_rate"]) == ("Renamed", 50)
        bad = api.patch(f"/v1/campaigns/{made['id']}", json={"body": "Hi {nickname}"})
        assert bad.status_code == 422
        assert "nickname" in bad.text
        other = _client(stack, _tenant(database_url).api_key)
        assert other.delete(f"/v1/templates/{template['id']}").status_code == 404
        assert other.patch(f"/v1/campaigns/{made['id']}", json={"name": "x"}).status_code == 404
        assert other.get(f"/v1/campaigns/{made['id']}").status_code == 404
        assert api.delete(f"/v1/templates/{template['id']}").status_code == 204
        assert api.get(f"/v1/templates/{template['id']}").status_code == 404
        kept = api.get(f"/v1/campaigns/{made['id']}").json()
        assert (kept["template_id"], kept["body"]) == (None, "Hello {first_name}")


CSV_BAD = (
    "user_id,phone,time_zone,interests,first_name,consent_at\n"
    "a1,+13125550101,America/Chicago,electronics|garden,Ann,2026-01-01T00:00:00Z\n"
    "a2,not-a-phone,America/Chicago,,Bob,2026-01-01T00:00:00Z\n"
    "a3,+13125550103,Mars/Base,,Cy,2026-01-01T00:00:00Z\n"
    "a4,+13125550104,,,Di,\n"
    "a1,+13125550105,,,Dup,\n"
)
CSV_FIXED = CSV_BAD.replace("not-a-phone", "+13125550102").replace("Mars/Base", "Asia/Kolkata").replace(
    "a1,+13125550105,,,Dup,\n", "")


def test_import_reports_bad_lines_and_retry_imports_once(stack: Stack, database_url: str) -> None:
    tenant = _tenant(database_url)
    tenant_id, key = tenant.id, tenant.api_key
    with _client(stack, key) as api:
        csv_headers = {"content-type": "text/csv"}
        report = api.post("/v1/recipients/import", content=CSV_BAD.encode(), headers=csv_headers).json()
        assert (report["received"], report["inserted"], report["rejected"]) == (5, 2, 3)
        assert [(e["line"], e["field"]) for e in report["errors"]] == [
            (3, "phone"), (4, "time_zone"), (6, "user_id")]
        retry = api.post("/v1/recipients/import", content=CSV_FIXED.encode(), headers=csv_headers).json()
        assert (retry["inserted"], retry["updated"], retry["unchanged"], retry["rejected"]) == (2, 0, 2, 0)
        again = api.post("/v1/recipients/import", content=CSV_FIXED.encode(), headers=csv_headers).json()
        assert (again["inserted"], again["unchanged"]) == (0, 4)
        assert report["profiles_published"]
        assert retry["profiles_published"]
        ndjson = b'{"user_id": "j1", "phone": "+13125550201"}\n{"user_id": "j2"}\nnot json\n'
        report = api.post("/v1/recipients/import", content=ndjson,
                          headers={"content-type": "application/x-ndjson"}).json()
        assert (report["inserted"], [e["line"] for e in report["errors"]]) == (1, [2, 3])
        fatal = api.post("/v1/recipients/import", content=b"phone\n+13125550301\n", headers=csv_headers)
        assert fatal.status_code == 422
        assert "user_id" in fatal.text
        listed = api.get("/v1/recipients", params={"limit": 2}).json()
        assert [r["user_id"] for r in listed] == ["a1", "a4"]  # by id: the first import's good rows
        one = api.get("/v1/recipients/a3").json()
        assert (one["time_zone"], one["consent"]) == ("Asia/Kolkata", True)
        assert api.get("/v1/recipients/nobody").status_code == 404
    rows = asyncio.run(_fetch(database_url, "SELECT user_id, interests FROM recipients WHERE tenant_id = $1"
                              " ORDER BY user_id", tenant_id))
    assert [r["user_id"] for r in rows] == ["a1", "a2", "a3", "a4", "j1"]
    assert rows[0]["interests"] == ["electronics", "garden"]
    keys = asyncio.run(_profile_keys(stack, tenant_id))
    assert keys == {f"{tenant_id}:{u}" for u in ("a1", "a2", "a3", "a4", "j1")}


async def _profile_keys(stack: Stack, tenant_id: int) -> set[str]:
    """Keys of this tenant's records on the profiles topic (read from the start)."""
    settings = stack.settings
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        topic = settings.topic("profiles")
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        keys: set[str] = set()
        while [p for p in parts if await consumer.position(p) < ends[p]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                keys.update(m.key.decode() for m in batch if m.key)
        return {k for k in keys if k.startswith(f"{tenant_id}:")}
    finally:
        await consumer.stop()


async def _fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


# ------------------------------------------------------------------------------ runs
def test_preview_equals_what_the_run_releases(stack: Stack, database_url: str) -> None:
    tenant = _tenant(database_url)
    tenant_id, key = tenant.id, tenant.api_key
    asyncio.run(_copy_audience(database_url, tenant_id, 3000, "+4477001", ZONES))
    with _client(stack, key) as api:
        segment = {"time_zones": ZONES[1:], "holdout_pct": 10, "exclude": {"user_ids": ["u1", "u2"]}}
        tight = _campaign(api, time_mode="recipient_local", deadline="2030-11-26T09:01:00",
                          segment=segment, max_rate=2)
        late = api.post(f"/v1/campaigns/{tight['id']}/preview").json()
        assert late["meets_deadline"] is False
        assert "cannot meet deadline" in late["verdict"]
        assert late["required_rate_per_s"] > 2  # ~540 a zone in the minute before each deadline
        quiet = {"quiet_hours": {"start": "08:30", "end": "09:00:30"}}  # only 30 s left to send
        later = api.post(f"/v1/campaigns/{tight['id']}/preview", json=quiet).json()
        assert later["required_rate_per_s"] == pytest.approx(late["required_rate_per_s"] * 2, rel=0.01)
        starts = {datetime.fromisoformat(z["starts_at"]).astimezone(ZoneInfo(z["time_zone"])).time()
                  for z in later["zones"]}
        assert {t.isoformat() for t in starts} == {"09:00:30"}  # each wave waits for its quiet hours
        bad = api.post(f"/v1/campaigns/{tight['id']}/preview", json={"quiet_hours": {"start": "25:00"}})
        assert bad.status_code == 422
        assert "quiet_hours" in bad.text
        c = _campaign(api, time_mode="recipient_local", segment=segment,
                      body="Hi {first_name}, 20% off today: https://shop.example.com/bf")
        preview = api.post(f"/v1/campaigns/{c['id']}/preview").json()
        assert preview["audience"] == 3000 * 4 // 5 - 2
        assert 0 < preview["holdout"] < preview["audience"] // 5
        assert preview["meets_deadline"] is True
        assert (preview["zones"][0]["sendable"], preview["cost_units"]) == (
            preview["zones"][0]["audience"] - preview["zones"][0]["holdout"], preview["sendable"])
        assert {z["time_zone"] for z in preview["zones"]} == set(ZONES[1:])
        started = time.monotonic()
        assert api.post(f"/v1/campaigns/{c['id']}/run-now").status_code == 201
        run = eventually(lambda: _released(api, c["id"]), timeout=90)
        print(f"released {preview['sendable']} recipients in {time.monotonic() - started:.1f}s")
        waves = {w["time_zone"]: w for w in run["waves"]}
        for zone in preview["zones"]:
            wave = waves[zone["time_zone"]]
            assert (wave["released"], wave["held_out"]) == (zone["sendable"], zone["holdout"]), zone
        sent = eventually(lambda: len(_ledger(stack, "+4477001")) == preview["sendable"] or None, timeout=90)
        assert sent
        held = asyncio.run(_fetch(database_url, "SELECT count(*) AS n FROM campaign_holdouts"
                                  " WHERE run_id = $1", run["id"]))
        assert held[0]["n"] == preview["holdout"]
        stats = eventually(lambda: _stats_sent(api, c["id"], preview["sendable"]), timeout=60)
        assert stats["held_out"] == preview["holdout"]
        assert (stats["clicks"], stats["clicked"], stats["opt_outs"]) == (0, 0, 0)
        _engage(stack, database_url, run["id"])
        stats = api.get(f"/v1/campaigns/{c['id']}/stats").json()["runs"][-1]
        assert (stats["clicks"], stats["clicked"], stats["opt_outs"]) == (3, 2, 1)
        nobody = _campaign(api, time_mode="recipient_local", segment={"user_ids": ["ghost"]})
        assert api.post(f"/v1/campaigns/{nobody['id']}/preview").json()["audience"] == 0
        empty = api.post(f"/v1/campaigns/{nobody['id']}/run-now").json()
        assert empty["waves"] == []
        assert empty["released_at"] is not None


def _engage(stack: Stack, database_url: str, run_id: int) -> None:
    """Two people click one message's link, one clicks another's, a bot a third's; one STOP."""
    rows = asyncio.run(_fetch(
        database_url, "SELECT l.code, m.phone, m.tenant_id FROM short_links l JOIN messages m"
        " ON m.message_key = l.message_key WHERE m.campaign_run_id = $1 ORDER BY l.code LIMIT 3",
        run_id))
    person = {"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)"}
    with httpx.Client(base_url=stack.api_url, timeout=10) as web:
        for code, headers in [(rows[0]["code"], person), (rows[0]["code"], person),
                              (rows[1]["code"], person), (rows[2]["code"], {"user-agent": "Slackbot"})]:
            assert web.get(f"/r/{code}", headers=headers).status_code == 302
        stop = web.post(f"/v1/webhooks/inbound/{rows[0]['tenant_id']}",
                        json={"from": rows[0]["phone"], "body": " stop "},
                        headers={"authorization": f"Bearer {stack.settings.dlr_webhook_token}"})
        assert stop.json()["kind"] == "opt_out", stop.text


def _stats_sent(api: httpx.Client, campaign_id: int, expected: int) -> dict[str, Any] | None:
    run: dict[str, Any] = api.get(f"/v1/campaigns/{campaign_id}/stats").json()["runs"][-1]
    return run if run["sent"] == expected else None


def test_pause_resume_and_cancel(stack: Stack, database_url: str) -> None:
    tenant = _tenant(database_url)
    tenant_id, key = tenant.id, tenant.api_key
    asyncio.run(_copy_audience(database_url, tenant_id, 6000, "+4477002", ["Europe/London"]))
    with _client(stack, key) as api:
        c = _campaign(api, max_rate=500)  # ~12 s to release at 500/s
        run_id = api.post(f"/v1/campaigns/{c['id']}/run-now").json()["id"]
        eventually(lambda: _runs(api, c["id"])[-1]["waves"][0]["released"] > 0 or None, timeout=30)
        assert api.post(f"/v1/campaigns/{c['id']}/pause").json()["state"] == "paused"
        assert asyncio.run(_control_state(stack, run_id)) is RunState.PAUSED
        time.sleep(2.0)  # a chunk in flight may still checkpoint
        held = _runs(api, c["id"])[-1]
        time.sleep(3.0)
        still = _runs(api, c["id"])[-1]
        assert still["state"] == "paused"
        assert still["waves"][0]["released"] == held["waves"][0]["released"] < 6000
        assert api.post(f"/v1/campaigns/{c['id']}/resume").json()["state"] == "active"
        done = eventually(lambda: _released(api, c["id"]), timeout=60)
        assert done["waves"][0]["released"] == 6000
        sent = eventually(lambda: len(_ledger(stack, "+4477002")) == 6000 or None, timeout=60)
        assert sent
        # cancel: nothing more is released, and RunControl says so
        c2 = _campaign(api, max_rate=500, name="Second")
        run2 = api.post(f"/v1/campaigns/{c2['id']}/run-now").json()["id"]
        eventually(lambda: _runs(api, c2["id"])[-1]["waves"][0]["released"] > 0 or None, timeout=30)
        assert api.post(f"/v1/campaigns/{c2['id']}/cancel").json()["state"] == "cancelled"
        assert asyncio.run(_control_state(stack, run2)) is RunState.CANCELLED
        time.sleep(2.0)
        cancelled = _runs(api, c2["id"])[-1]
        assert cancelled["waves"][0]["state"] == "cancelled"
        assert cancelled["waves"][0]["released"] < 6000
        assert api.post(f"/v1/campaigns/{c2['id']}/run-now").status_code == 409
        assert api.post(f"/v1/campaigns/{c2['id']}/resume").status_code == 409
        other = _client(stack, _tenant(database_url).api_key)
        assert other.post(f"/v1/campaigns/{c['id']}/pause").status_code == 404
        assert other.get(f"/v1/campaigns/{c['id']}/stats").status_code == 404


async def _control_state(stack: Stack, run_id: int) -> RunState | None:
    redis = connect_redis(stack.settings.redis_url)
    try:
        return (await RunControl(redis, Keys(stack.settings.redis_prefix)).states([run_id]))[run_id]
    finally:
        await redis.aclose()


def _holder(database_url: str, run_id: int) -> str | None:
    rows = asyncio.run(_fetch(database_url, "SELECT claimed_by FROM campaign_waves WHERE run_id = $1"
                              " AND state = 'releasing' AND released > 0 AND claimed_by IS NOT NULL", run_id))
    return rows[0]["claimed_by"] if rows else None


def _accepted(database_url: str, run_id: int, n: int) -> bool | None:
    rows = asyncio.run(_fetch(database_url, "SELECT count(*) AS n FROM messages WHERE campaign_run_id = $1"
                              " AND sent_at IS NOT NULL", run_id))
    return rows[0]["n"] >= n or None


def _exactly_once(stack: Stack, database_url: str, run_id: int, n: int, prefix: str) -> None:
    ids = asyncio.run(_fetch(database_url, "SELECT id FROM recipients WHERE phone LIKE $1", prefix + "%"))
    expected = {bulk_key(campaign_run_id=run_id, recipient_id=r["id"]) for r in ids}
    assert len(expected) == n
    eventually(lambda: _accepted(database_url, run_id, n), timeout=150, every=1.0)
    refs = [i["client_ref"] for i in _ledger(stack, prefix) if i["client_ref"] in expected]
    assert len(refs) == len(set(refs)) == n  # every recipient once: no gap, no duplicate
    rows = asyncio.run(_fetch(database_url, "SELECT count(*) AS n, count(DISTINCT message_key) AS k"
                              " FROM messages WHERE campaign_run_id = $1", run_id))
    assert (rows[0]["n"], rows[0]["k"]) == (n, n)


def test_fifty_thousand_two_schedulers_and_a_kill(stack: Stack, database_url: str) -> None:
    """Five zone waves of 10,000 shared by two schedulers; the one holding a wave mid-release
    is killed with SIGKILL; the other finishes every wave from the checkpoints."""
    n, prefix = 50_000, "+4477003"
    tenant = _tenant(database_url)
    tenant_id, key = tenant.id, tenant.api_key
    asyncio.run(_copy_audience(database_url, tenant_id, n, prefix, ZONES))
    with _client(stack, key) as api:
        c = _campaign(api, name="Big", time_mode="recipient_local", max_rate=4000)
        started = time.monotonic()
        run_id = api.post(f"/v1/campaigns/{c['id']}/run-now").json()["id"]
        holder = eventually(lambda: _holder(database_url, run_id), timeout=30, every=0.05)
        holders = {w["claimed_by"] for w in asyncio.run(_fetch(
            database_url, "SELECT claimed_by FROM campaign_waves WHERE run_id = $1", run_id))}
        victim = next(name for name in ("scheduler-1", "scheduler-2")
                      if holder.endswith(f":{stack.children[name].pid}"))
        stack.children[victim].kill()
        released = asyncio.run(_fetch(database_url, "SELECT sum(released) AS n FROM campaign_waves"
                                      " WHERE run_id = $1", run_id))[0]["n"]
        print(f"killed {victim} with {released} released; wave holders then: {holders}")
        assert 0 < released < n
        run = eventually(lambda: _released(api, c["id"]), timeout=120)
        print(f"50k released after {time.monotonic() - started:.1f}s")
        assert sum(w["released"] for w in run["waves"]) == n
        assert all(w["state"] == "done" for w in run["waves"])
        _exactly_once(stack, database_url, run_id, n, prefix)
        print(f"50k run with a kill: all accepted by the provider after {time.monotonic() - started:.1f}s")


def test_one_shot_recipient_local_run_is_created_once_with_a_wave_per_zone(
    stack: Stack, database_url: str
) -> None:
    """No run-now: the schedulers find the due one-shot run themselves (created once although
    two are running); the UTC+14 wave fires in seconds, the Kolkata one at 09:00 Kolkata time."""
    tenant = _tenant(database_url)
    tenant_id, key = tenant.id, tenant.api_key
    zones = ["Pacific/Kiritimati", "Asia/Kolkata"]
    asyncio.run(_copy_audience(database_url, tenant_id, 40, "+4477004", zones))
    soon = (datetime.now(UTC) + timedelta(seconds=3)).astimezone(ZoneInfo(zones[0]))
    wall = soon.replace(tzinfo=None, microsecond=0)
    with _client(stack, key) as api:
        c = _campaign(api, time_mode="recipient_local", run_at=wall.isoformat(), time_zone="Asia/Kolkata")
        run = eventually(lambda: _wave_done(api, c["id"], "Pacific/Kiritimati"), timeout=30)
        assert len(_runs(api, c["id"])) == 1
        waves = {w["time_zone"]: w for w in run["waves"]}
        assert waves["Pacific/Kiritimati"]["released"] == 20
        kolkata = waves["Asia/Kolkata"]
        assert kolkata["state"] == "pending"
        assert datetime.fromisoformat(kolkata["fire_at"]) == wall.replace(tzinfo=ZoneInfo("Asia/Kolkata"))
        assert run["released_at"] is None
        time.sleep(1.5)  # more scheduler ticks: still one run
        assert len(_runs(api, c["id"])) == 1


def _wave_done(api: httpx.Client, campaign_id: int, zone: str) -> dict[str, Any] | None:
    runs = _runs(api, campaign_id)
    if not runs:
        return None
    done = any(w["time_zone"] == zone and w["state"] == "done" for w in runs[0]["waves"])
    return runs[0] if done else None


def test_operator_cli_run_now_and_status(stack: Stack, database_url: str) -> None:
    tenant = _tenant(database_url)
    tenant_id, key = tenant.id, tenant.api_key
    asyncio.run(_copy_audience(database_url, tenant_id, 30, "+4477005", ["Europe/Berlin"]))
    env = {**os.environ, **stack.settings.to_env(), "NO_COLOR": "1"}
    with _client(stack, key) as api:
        c = _campaign(api, name="Ops")
        out = subprocess.run([sys.executable, "-m", "hexcast", "campaign", "run-now", str(c["id"])],
                             env=env, capture_output=True, text=True, timeout=60, check=True).stdout
        run_id = _runs(api, c["id"])[0]["id"]
        assert f"run {run_id} started" in out
        eventually(lambda: _accepted(database_url, run_id, 30), timeout=60)
        status = subprocess.run([sys.executable, "-m", "hexcast", "campaign", "status", str(c["id"])],
                                env=env, capture_output=True, text=True, timeout=60, check=True).stdout
        assert f"run {run_id}" in status
        assert "released 30 sent 30" in status
        missing = subprocess.run([sys.executable, "-m", "hexcast", "campaign", "status", "999999"],
                                 env=env, capture_output=True, text=True, timeout=60)
        assert missing.returncode == 2
        assert "campaign 999999 not found" in missing.stderr
