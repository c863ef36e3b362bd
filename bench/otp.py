"""Scenario 3: one-time passwords posted at a few per second while the holiday bulk runs
(and issue 21's transactional messages, ``lane="transactional"``, the same way).

Latency: from just before ``POST /v1/messages/otp`` (``POST /v1/messages``, one message a
request) to the provider ledger's ``accepted_at`` for that message (client_ref = the
message key, which the API returns).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from bench.common import percentile

__all__ = ["OtpLoad", "OtpReport"]


@dataclass(frozen=True)
class OtpReport:
    posted: int
    ledgered: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class OtpLoad:
    """A thread posting ``rate`` OTPs (or messages of another ``lane``) a second until
    :meth:`stop`; each to its own phone, the lanes' phones apart."""

    api_url: str
    api_key: str
    rate: float = 3.0
    lane: str = "otp"
    posts: list[tuple[str, datetime]] = field(default_factory=list)  # message key, posted at
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otp-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        with httpx.Client(base_url=self.api_url, headers={"X-API-Key": self.api_key}, timeout=30) as api:
            n = 0
            while not self._stop.wait(max(0.0, started + n / self.rate - time.monotonic())):
                at = datetime.now(UTC)
                key = self._post(api, n)
                if key is not None:
                    self.posts.append((key, at))
                else:
                    self.errors += 1
                n += 1

    def _post(self, api: httpx.Client, n: int) -> str | None:
        """Message ``n``; its key (None: refused)."""
        headers = {"Idempotency-Key": f"bench-{self.lane}-{n}"}
        if self.lane == "otp":
            response = api.post("/v1/messages/otp", headers=headers,
                                json={"phone": f"+447700{n % 1_000_000:06d}",
                                      "body": f"Your code is {100000 + n % 900000}"})
            return str(response.json()["message_key"]) if response.status_code == 202 else None
        response = api.post("/v1/messages", headers=headers, json={"messages": [{
            "to": f"+447800{n % 1_000_000:06d}", "body": f"Order {n} is on its way",
            "lane": self.lane, "client_reference": f"bench-{n}"}]})
        return str(response.json()["messages"][0]["message_key"]) if response.status_code == 202 else None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=35)

    def report(self, sim_url: str, token: str) -> OtpReport:
        """Look every posted OTP up in the provider ledger by its client reference."""
        latencies: list[float] = []
        with httpx.Client(base_url=sim_url, headers={"Authorization": f"Bearer {token}"},
                          timeout=30) as sim:
            for key, at in self.posts:
                response = sim.get(f"/v1/messages/by-ref/{key}")
                if response.status_code == 200:
                    accepted = datetime.fromisoformat(response.json()["accepted_at"])
                    latencies.append((accepted - at).total_seconds() * 1000)
        return OtpReport(len(self.posts), len(latencies), percentile(latencies, 50),
                         percentile(latencies, 99), max(latencies, default=0.0))
