"""A whole hexcast deployment on this machine that faults can be done to.

:class:`World` starts its own PostgreSQL (``pg_ctl``, so it can be restarted), its own Redis
(no persistence: a restart loses every key, as the issue asks), the embedded broker unless
one is given, and every process of ``hexcast up`` as a child with its own log and metrics
port. The provider simulator keeps its ledger in a file, so a killed simulator comes back
remembering what it accepted (a real provider does not forget). Faults act by name::

    with World(state_dir).started() as world:
        world.kill("sender-bulk")           # SIGKILL, then the same process again
        world.restart_postgres(down_s=3)
        world.add("matcher"); world.remove("matcher-2")
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from hexcast.core.logging import get_logger
from hexcast.core.settings import Settings, load_settings
from hexcast.core.topics import create_topics
from hexcast.devstack.broker import EmbeddedBroker
from hexcast.devstack.localinfra import ThrowawayPostgres, ThrowawayRedis
from hexcast.devstack.procs import ChildProcess, free_port, hexcast_process, wait_http
from hexcast.ops import migrate, sync_catalog
from hexcast.up import PROCESSES

__all__ = ["KINDS", "World"]

log = get_logger("hexcast.chaos")

_START_TIMEOUT_S = 180.0
_SERVING = ("provider-sim", "api")  # the HTTP processes, waited for after a (re)start
KINDS: dict[str, list[str]] = dict(PROCESSES)
"""Every process kind of a deployment (name → ``hexcast`` arguments), as ``hexcast up`` runs."""


class World:
    """Infrastructure and processes of one deployment; ``instances`` maps a process name
    (``sender-bulk``, ``sender-bulk-2``…) to its child and ``kinds`` to its kind."""

    def __init__(self, state_dir: Path, *, broker_url: str | None = None,
                 overrides: Mapping[str, object] | None = None, keep_data: bool = False) -> None:
        """``keep_data``: leave PostgreSQL's data directory after :meth:`stop` (to look into a
        failed run); by default it goes (a 1M run leaves 3 GB)."""
        self.state = state_dir
        self._keep_data = keep_data
        self._broker_url = broker_url
        self._overrides = dict(overrides or {})
        self._stack = contextlib.ExitStack()
        self.instances: dict[str, ChildProcess] = {}
        self.kinds: dict[str, str] = {}
        self.metrics_urls: dict[str, str] = {}
        self.settings: Settings | None = None
        self.broker: EmbeddedBroker | None = None
        self.postgres = ThrowawayPostgres(state_dir)
        self.redis = ThrowawayRedis(log_path=state_dir / "redis.log")

    @contextlib.contextmanager
    def started(self) -> Iterator[World]:
        try:
            self.start()
            yield self
        finally:
            self.stop()

    @property
    def live(self) -> Settings:
        if self.settings is None:
            raise RuntimeError("the world is not started")
        return self.settings

    def start(self) -> World:
        self.state.mkdir(parents=True, exist_ok=True)
        broker = self._broker_url
        if broker is None:
            self.broker = self._stack.enter_context(EmbeddedBroker(log_path=self.state / "broker.log"))
            broker = self.broker.url
        dsn = self.postgres.start()
        if not self._keep_data:  # after the stop below (callbacks run last in, first out)
            self._stack.callback(shutil.rmtree, self.postgres.root, True)
        self._stack.callback(self.postgres.stop)
        redis_url = self.redis.start()
        self._stack.callback(self.redis.stop)
        self.settings = _settings(self.state, broker, dsn, redis_url, self._overrides)
        asyncio.run(migrate(self.settings))
        asyncio.run(create_topics(self.settings))
        for kind in KINDS:
            self._spawn(kind, kind)
        for name in _SERVING:
            self._wait_serving(name)
        return self

    def stop(self) -> None:
        for child in reversed(list(self.instances.values())):
            child.terminate(grace_s=10)
        self._stack.close()

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, kind: str) -> None:
        port = free_port()
        env = {**self.live.to_env(), "HEXCAST_METRICS_PORT": str(port)}
        child = hexcast_process(name, KINDS[kind], env=env, log_dir=self.state / "logs")
        child.spawn()
        self.instances[name], self.kinds[name] = child, kind
        self.metrics_urls[name] = f"http://127.0.0.1:{port}/metrics"

    def kill(self, name: str) -> None:
        """SIGKILL the process (its whole session), then start it again at once."""
        child = self.instances[name]
        child.kill()
        child.spawn()
        if name in _SERVING:
            self._wait_serving(name)

    def _wait_serving(self, name: str) -> None:
        """Until the HTTP process ``name`` answers its health check. A restarted simulator
        reads its whole ledger file first (a 1M run's 1.7M lines took over 30 s on two busy
        cores)."""
        url = self.live.api_public_url if name == "api" else self.live.provider_url
        wait_http(f"{url}/health", child=self.instances[name], timeout=_START_TIMEOUT_S)

    def add(self, kind: str) -> str:
        """One more process of ``kind`` (joining its consumer group); returns its name."""
        n = 2
        while f"{kind}-{n}" in self.instances:
            n += 1
        self._spawn(f"{kind}-{n}", kind)
        return f"{kind}-{n}"

    def remove(self, name: str) -> None:
        """Stop the process gracefully (SIGTERM: it leaves its group) and forget it."""
        self.instances.pop(name).terminate(grace_s=15)
        self.kinds.pop(name)
        self.metrics_urls.pop(name)

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.instances.items() if child.alive}

    def dead(self) -> list[str]:
        """Processes that exited by themselves (none should)."""
        return [name for name, child in self.instances.items() if not child.alive]

    # ------------------------------------------------------------------ infrastructure
    def restart_postgres(self, down_s: float) -> None:
        """Stop PostgreSQL (fast shutdown: every connection is cut), keep it down ``down_s``
        seconds, start it again on the same data and port."""
        self.postgres.stop()
        time.sleep(down_s)
        self.postgres.start()

    def restart_broker(self, down_s: float) -> None:
        """Stop the embedded broker (memory-only: every topic, record and committed offset is
        lost), keep it down ``down_s`` seconds, start it on the same port, then README's
        recovery: recreate the topics, republish the catalog and profiles from PostgreSQL and
        restart the matchers (each reads both topics from the start only when it starts: a
        running one resumes from its old positions, which in the recreated topics may skip
        records)."""
        if self.broker is None:
            raise RuntimeError("the world runs on a broker it did not start")
        self.broker.stop()
        time.sleep(down_s)
        self.broker.start()
        asyncio.run(create_topics(self.live))
        asyncio.run(sync_catalog(self.live))
        for name, kind in self.kinds.items():
            if kind == "matcher":
                self.instances[name].terminate(grace_s=10)
                self.instances[name].spawn()

    def restart_redis(self, down_s: float) -> None:
        """Stop Redis (nothing is kept on disk: every key is lost), keep it down ``down_s``
        seconds, start it again on the same port."""
        self.redis.stop()
        time.sleep(down_s)
        self.redis.start()


def _settings(state: Path, broker: str, dsn: str, redis_url: str,
              overrides: Mapping[str, object]) -> Settings:
    tag = uuid.uuid4().hex[:8]
    api_port, sim_port = free_port(), free_port()
    return load_settings(**{
        "broker_url": broker, "database_url": dsn, "redis_url": redis_url,
        "redis_prefix": f"chaos{tag}:", "topic_prefix": f"chaos{tag}.", "app_id": f"hexcast-chaos-{tag}",
        "state_dir": str(state / "faust"), "api_port": api_port,
        "api_public_url": f"http://127.0.0.1:{api_port}", "sim_port": sim_port,
        "provider_url": f"http://127.0.0.1:{sim_port}", "sim_ledger_path": str(state / "sim-ledger.jsonl"),
        "operator_token": uuid.uuid4().hex, "webhook_allow_private_urls": True,
        "sim_dlr_delay_s": 0.2, **overrides,
    })
