"""The hexcast processes as real subprocesses, for end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from hexcast.procs import free_port, hexcast_process, wait_http
from hexcast.settings import Settings

T = TypeVar("T")


DEFAULT_PROCESSES: dict[str, list[str]] = {
    "provider-sim": ["provider-sim"],
    "api": ["api"],
    "matcher": ["matcher"],
    "sender-geo": ["sender", "--lane", "geo"],
}


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
        self.children = {
            name: hexcast_process(name, args, env=env, log_dir=log_dir)
            for name, args in (processes or DEFAULT_PROCESSES).items()
        }

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

    def ledger(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.sim_url}/ledger", params={"limit": 10000})
        items: list[dict[str, Any]] = response.json()["items"]
        return items


def eventually(check: Callable[[], T | None], *, timeout: float = 60.0, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
