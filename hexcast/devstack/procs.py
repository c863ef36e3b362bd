"""Child processes: the `up` orchestrator, the embedded services and end-to-end tests use these.

Children run in their own session so that Ctrl-C reaches the orchestrator first and shutdown
happens in order; when started from the main thread on Linux they also get SIGTERM if the
parent dies, so nothing is orphaned.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Self, TypeVar

import httpx

from hexcast.core.errors import ConfigError
from hexcast.core.logging import get_logger

__all__ = [
    "ChildProcess",
    "Service",
    "free_port",
    "hexcast_process",
    "port_in_use",
    "run_sync",
    "wait_http",
    "wait_tcp",
]

_log = get_logger(__name__)
_T = TypeVar("_T")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


_LISTEN_PORTS = range(20_000, 32_768)
"""Where :func:`free_port` looks: below Linux's ephemeral range (32768-60999), from which the
kernel gives every outgoing connection its local port. A port handed out from that range
(``bind(0)``) could be taken by any process's next connection before the child that was given
it binds it; seen as a child dying with "Address already in use" during chaos runs."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, outside the ephemeral range (another listener
    may still take it before it is bound, but no outgoing connection will)."""
    for _ in range(200):
        port = random.randrange(_LISTEN_PORTS.start, _LISTEN_PORTS.stop)  # noqa: S311 - not secret
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # the range is full: any
        sock.bind((host, 0))
        found: int = sock.getsockname()[1]
        return found


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something listens on ``host:port`` (a bind with SO_REUSEADDR fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even inside a running event loop.

    The coroutine runs on a fresh loop in a short-lived worker thread, so a caller that is
    itself inside an event loop blocks that loop until it is done.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _parent_death_signal() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent thread dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Service:
    """Something with ``start() -> url`` and ``stop()``; ``with`` starts and stops it."""

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ChildProcess:
    """One long-running child whose stdout and stderr go to a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], log_path: Path,
        *, env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {}), "NO_COLOR": "1"}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def spawn(self) -> None:
        """Start the child (appending to the log file); it must not be running."""
        if self.alive:
            raise ConfigError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        in_main = threading.current_thread() is threading.main_thread()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
                preexec_fn=_parent_death_signal if in_main and sys.platform == "linux" else None,
            )
        except OSError as exc:
            self._close_log()
            raise ConfigError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from exc
        _log.debug("child_started", name=self.name, pid=self._proc.pid, log=str(self.log_path))

    def check_alive(self) -> None:
        """Raise ConfigError with the log tail if the child has exited."""
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            raise ConfigError(
                f"{self.name} exited with status {code} during startup; "
                f"log {self.log_path}:\n{self.tail()}"
            )

    def tail(self, max_bytes: int = 4000) -> str:
        """The end of the log file, without terminal colour codes."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - max_bytes))
                text = fh.read().decode("utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return _ANSI.sub("", text).strip() or "(log is empty)"

    def terminate(self, grace_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s`` seconds. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _log.warning("child_killed", name=self.name, pid=proc.pid, grace_s=grace_s)
                proc.kill()
                proc.wait()
        self._close_log()

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ConfigError(f"{self.name} is not running")
        return self._proc.pid

    def kill(self) -> None:
        """SIGKILL to the child's whole session: the crash case."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def wait_tcp(child: ChildProcess, host: str, port: int, timeout_s: float) -> None:
    """Block until ``host:port`` accepts a TCP connection; ConfigError if the child dies."""
    deadline = time.monotonic() + timeout_s
    while True:
        child.check_alive()
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"{child.name} did not accept connections on {host}:{port} within "
                    f"{timeout_s:.0f}s; log {child.log_path}:\n{child.tail()}"
                ) from None
            time.sleep(0.02)


# ---------------------------------------------------------------------------- probes


def hexcast_process(
    name: str, args: Sequence[str], *, env: Mapping[str, str], log_dir: Path
) -> ChildProcess:
    """`python -m hexcast <args>` as a child with its own log file and environment."""
    return ChildProcess(
        name, [sys.executable, "-m", "hexcast", *args], log_dir / f"{name}.log", env=env
    )


def wait_http(url: str, *, child: ChildProcess, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; fail early, with the log tail, if ``child`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_alive()
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise ConfigError(f"{child.name}: {url} did not answer within {timeout:.0f}s:\n{child.tail()}")
