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


class Stack:
    """provider-sim, api, matcher and sender (geo lane), wired to one settings object."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
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
            for name, args in {
                "provider-sim": ["provider-sim"],
                "api": ["api"],
                "matcher": ["matcher"],
                "sender-geo": ["sender", "--lane", "geo"],
            }.items()
        }

    def start(self) -> Stack:
        for child in self.children.values():
            child.spawn()
        wait_http(f"{self.sim_url}/health", child=self.children["provider-sim"])
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
