"""The mixed workload of a chaos run or a soak, as clients drive it: a recipient-local bulk
campaign, visits at a steady rate (some inside a store's geofence), OTPs, transactional sends
and STOP replies arriving mid-campaign; receipts come from the provider simulator.

Every client behaves as a well-made one does while processes die: it retries a request that
got no answer or a 5xx with the same identity (event ids, idempotency keys, provider reply
ids), so a retry never makes a second message, and counts only what was answered 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings
from hexcast.ops import new_tenant, sync_catalog
from targeting.geofence import destination

__all__ = ["ZONES", "Driver", "Load", "Rates", "Seeded", "seed", "start_campaign"]

log = get_logger("hexcast.chaos")

ZONES = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
         "Europe/London", "Asia/Tokyo"]
AREA_CODES = (212, 312, 213, 303, 415, 617, 713, 206)
"""Mainland US area codes the audience's numbers are drawn from: a number's region joins its
profile zone in the quiet-hours rule (the strictest wins), so a random area code (Guam, Alaska,
Hawaii) would silently hold every geo offer of a run back."""
SHOP = (41.8881, -87.6298)  # a store in Chicago; visits inside its 150 m fence match
CONSENT = datetime(2026, 1, 1, tzinfo=UTC)  # marketing consent, as the import records it
_RETRY_S = 0.5


@dataclass(frozen=True, slots=True)
class Seeded:
    tenant_id: int
    api_key: str
    phone_prefix: str
    recipients: int

    def phone(self, n: int) -> str:
        return f"{self.phone_prefix}{n:07d}"


@dataclass(frozen=True, slots=True)
class Rates:
    visits_per_s: float = 20.0
    otps_per_s: float = 1.0
    transactional_per_s: float = 1.0
    stops: int = 20  # STOP replies during the run, spread over it


@dataclass
class Load:
    """Counts of what the api accepted, by kind, and the accepted visit event ids."""

    accepted_visits: list[str] = field(default_factory=list)
    otps: int = 0
    transactional: int = 0
    stops: list[str] = field(default_factory=list)
    retries: int = 0


async def seed(settings: Settings, *, recipients: int, tag: str) -> Seeded:
    """A tenant with a store, a promotion and ``recipients`` consenting recipients (zones in
    turn), whose profiles are published for the matcher."""
    tenant_id, key = await new_tenant(settings, f"chaos-{tag}", actor="hexcast chaos", reason="chaos run")
    prefix = f"+1{random.Random(tag).choice(AREA_CODES)}"  # noqa: S311 - a phone range, not a secret
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.copy_records_to_table(
            "recipients", columns=["tenant_id", "user_id", "phone", "time_zone", "first_name", "consent_at"],
            records=[(tenant_id, f"u{i}", f"{prefix}{i:07d}", ZONES[i % len(ZONES)], f"N{i}", CONSENT)
                     for i in range(recipients)])
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=settings.api_public_url, headers={"X-API-Key": key},
                                 timeout=30) as api:
        store = await _created(api, "/v1/stores", name="chaos store", lat=SHOP[0], lng=SHOP[1],
                               time_zone="America/Chicago", geofence={"type": "circle", "radius_m": 150})
        await _created(api, "/v1/promotions", store_id=store["id"], name="chaos offer",
                       body="Hi {first_name}, 10% off in store today", cooldown_minutes=60)
    await sync_catalog(settings)
    return Seeded(tenant_id=tenant_id, api_key=key, phone_prefix=prefix, recipients=recipients)


async def _created(api: httpx.AsyncClient, path: str, **body: Any) -> dict[str, Any]:
    answer = await api.post(path, json=body)
    if answer.status_code != 201:
        raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text[:300]}")
    found: dict[str, Any] = answer.json()
    return found


async def start_campaign(settings: Settings, seeded: Seeded, *, max_rate: float) -> int:
    """A recipient-local campaign to everyone, run now; returns the run id."""
    async with httpx.AsyncClient(base_url=settings.api_public_url, timeout=30,
                                 headers={"X-API-Key": seeded.api_key}) as api:
        campaign = await _created(api, "/v1/campaigns", name="chaos holiday",
                                  body="Hi {first_name}, holiday sale: 20% off today",
                                  segment={"everyone": True}, run_at="2030-11-26T09:00:00",
                                  time_zone="America/Chicago", time_mode="recipient_local",
                                  max_rate=max_rate)
        answer = await _until_answered(lambda: api.post(f"/v1/campaigns/{campaign['id']}/run-now"))
        run_id: int = answer.json()["id"]
        return run_id


async def _until_answered(call: Callable[[], Awaitable[httpx.Response]], load: Load | None = None,
                          *, give_up_s: float = 120.0) -> httpx.Response:
    """The first answer that is not a 5xx, retrying what got none (a process is down) with
    the same request; a 4xx is returned as it is (the caller decides)."""
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            answer = await call()
            if answer.status_code < 500:
                return answer
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("no answer from the api")
        if load is not None:
            load.retries += 1
        await asyncio.sleep(_RETRY_S)


class Driver:
    """Runs the steady clients until :meth:`stop`; STOP replies go to campaign recipients."""

    def __init__(self, settings: Settings, seeded: Seeded, rates: Rates, *, seed_value: int,
                 duration_s: float) -> None:
        self.settings, self.seeded, self.rates = settings, seeded, rates
        self.rng = random.Random(seed_value)  # noqa: S311 - a reproducible schedule
        self.duration_s = duration_s
        self.load = Load()
        self.tag = uuid.uuid4().hex[:6]
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> Load:
        async with httpx.AsyncClient(base_url=self.settings.api_public_url, timeout=10,
                                     headers={"X-API-Key": self.seeded.api_key}) as api:
            await asyncio.gather(self._visits(api), self._otps(api), self._transactional(api),
                                 self._stops())
        return self.load

    async def _every(self, per_s: float, step: Callable[[int], Awaitable[None]]) -> None:
        n = 0
        while per_s > 0 and not self._stopping.is_set():
            started = time.monotonic()
            await step(n)
            n += 1
            await asyncio.sleep(max(0.0, 1 / per_s - (time.monotonic() - started)))

    async def _visits(self, api: httpx.AsyncClient) -> None:
        async def post(n: int) -> None:
            inside = self.rng.random() < 0.3
            user = self.rng.randrange(self.seeded.recipients)
            metres = self.rng.uniform(0, 100) if inside else self.rng.uniform(2_000, 20_000)
            lat, lng = destination(SHOP[0], SHOP[1], metres, self.rng.uniform(0, 360))
            event = {"event_id": f"{self.tag}-v{n}", "user_id": f"u{user}", "lat": lat, "lng": lng,
                     "accuracy_m": 10, "ts": datetime.now(UTC).isoformat()}
            answer = await _until_answered(lambda: api.post("/v1/visits", json={"events": [event]}),
                                           self.load)
            if answer.status_code == 202:
                self.load.accepted_visits.append(str(event["event_id"]))
        await self._every(self.rates.visits_per_s, post)

    async def _otps(self, api: httpx.AsyncClient) -> None:
        async def post(n: int) -> None:
            headers = {"Idempotency-Key": f"{self.tag}-otp-{n}"}
            body = {"phone": self.seeded.phone(self.rng.randrange(self.seeded.recipients)),
                    "body": f"Your code is {self.rng.randrange(10**5, 10**6)}"}
            answer = await _until_answered(
                lambda: api.post("/v1/messages/otp", json=body, headers=headers), self.load)
            self.load.otps += answer.status_code == 202
        await self._every(self.rates.otps_per_s, post)

    async def _transactional(self, api: httpx.AsyncClient) -> None:
        async def post(n: int) -> None:
            headers = {"Idempotency-Key": f"{self.tag}-tx-{n}"}
            to = self.seeded.phone(self.rng.randrange(self.seeded.recipients))
            body = {"messages": [{"to": to, "body": f"Order {n} has shipped"}]}
            answer = await _until_answered(lambda: api.post("/v1/messages", json=body, headers=headers),
                                           self.load)
            self.load.transactional += answer.status_code == 202
        await self._every(self.rates.transactional_per_s, post)

    async def _stops(self) -> None:
        """STOP replies from campaign recipients, spread over the run, through the provider
        webhook (with the provider's token and a reply id it would resend on a retry)."""
        url = f"{self.settings.api_public_url}/v1/webhooks/inbound/{self.seeded.tenant_id}"
        headers = {"Authorization": f"Bearer {self.settings.dlr_webhook_token}"}
        every = self.duration_s / max(self.rates.stops, 1)
        async with httpx.AsyncClient(timeout=10, headers=headers) as hooks:
            for n in range(self.rates.stops):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=every)
                if self._stopping.is_set():
                    return
                phone = self.seeded.phone(self.rng.randrange(self.seeded.recipients))
                body = {"from": phone, "body": "STOP", "id": f"{self.tag}-stop-{n}"}
                answer = await _until_answered(functools.partial(hooks.post, url, json=body), self.load)
                if answer.status_code == 200:
                    self.load.stops.append(phone)

