"""The provider simulator as a real subprocess, configured by a :class:`SimConfig` object.

:func:`running_sim` is for tests of the simulator itself or of a client against a simulator
whose configuration a test picks (modes, faults, rates) without the hexcast settings; a
:class:`~hexcast.testing.stack.Stack` starts ``hexcast provider-sim`` from settings instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from hexcast.devstack.procs import free_port
from providersim import SimConfig

__all__ = ["SimStartError", "running_sim"]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout holding ``providersim`` (put on the child's ``PYTHONPATH``)."""

_LAUNCH = (
    "import sys\n"
    "from providersim.server import SimConfig, run_sim\n"
    "run_sim(SimConfig.model_validate_json(sys.argv[1]), sys.argv[2], int(sys.argv[3]),\n"
    "        ssl_certfile=sys.argv[4] or None, ssl_keyfile=sys.argv[5] or None)\n"
)


class SimStartError(RuntimeError):
    """The simulator process did not become healthy."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT)
    return env


def _wait_healthy(
    proc: subprocess.Popen[bytes], base_url: str, timeout_s: float, verify: str | bool = True
) -> bool:
    """True once /health answers; False if the process died first or time ran out."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0, verify=verify) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.get(f"{base_url}/health").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def running_sim(
    config: SimConfig,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout_s: float = 20.0,
    attempts: int = 3,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    ssl_cafile: str | None = None,
) -> Iterator[str]:
    """Start ``run_sim(config, host, port)`` in a subprocess; yield its base URL.

    Without ``port`` a free one is picked (and re-picked if another process grabbed it
    first). The process is terminated on exit; its stderr is reported if it fails to start.
    With ``ssl_certfile`` (and ``ssl_keyfile``) it serves HTTPS and the URL is ``https://``;
    the health check then trusts ``ssl_cafile``, the CA that issued the certificate.
    """
    with tempfile.TemporaryFile() as errfile:
        for _ in range(attempts):
            chosen = port if port is not None else free_port(host)
            base_url = f"{'https' if ssl_certfile else 'http'}://{host}:{chosen}"
            args = [sys.executable, "-c", _LAUNCH, config.model_dump_json(), host, str(chosen),
                    ssl_certfile or "", ssl_keyfile or ""]
            proc = subprocess.Popen(
                args, cwd=REPO_ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=errfile
            )
            try:
                if _wait_healthy(proc, base_url, startup_timeout_s, ssl_cafile or True):
                    yield base_url
                    return
            finally:
                _stop(proc)
        errfile.seek(0)
        stderr = errfile.read().decode(errors="replace")[-4000:]
    raise SimStartError(f"provider simulator did not start:\n{stderr}")
