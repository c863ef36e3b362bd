"""Prometheus and Alertmanager for `hexcast up` and the tests, from the installed binaries
(Debian's ``prometheus`` and ``prometheus-alertmanager``; ``make deps`` installs them).

Their configurations are the files under ``deploy/`` that docker compose mounts, rendered for
a local stack: Prometheus reads the file-based service discovery file `hexcast up` writes
(``<state_dir>/prometheus/targets.json``), the rules in ``deploy/prometheus/rules/`` and alerts
this Alertmanager; Alertmanager posts to this stack's api with its operator token (written to
a file only the owner reads) and, when ``slack_webhook_url`` is set, to that webhook. Rendered
configs and storage live under ``<state_dir>/prometheus`` and ``<state_dir>/alertmanager``.

``deploy/`` is found beside the ``hexcast`` package, in the source checkout `hexcast up` runs
from (``pip install -e .``). An installed wheel has no ``deploy/``: monitoring is then skipped
with a warning, as it is when the binaries are missing.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hexcast.core.errors import ConfigError
from hexcast.core.logging import get_logger
from hexcast.devstack.procs import ChildProcess, Service, free_port, wait_http

__all__ = ["DEPLOY_DIR", "Alertmanager", "Monitoring", "Prometheus", "Receivers",
           "alertmanager_config", "missing", "prometheus_config", "running_monitoring"]

_log = get_logger(__name__)

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
"""``deploy/`` of the source checkout: the parent of the ``hexcast`` package."""
RECEIVER_PATH = "/v1/admin/alerts/alertmanager"
"""The api route Alertmanager's hexcast receiver posts to (``hexcast/alerts_api.py``)."""
_BINARIES = {"prometheus": ("prometheus",), "alertmanager": ("prometheus-alertmanager", "alertmanager")}


def _binary(kind: str) -> str | None:
    return next((found for name in _BINARIES[kind] if (found := shutil.which(name))), None)


def missing() -> str | None:
    """Why monitoring cannot start here (no binary, no ``deploy/``), or None if it can."""
    gone = [_BINARIES[kind][0] for kind in _BINARIES if _binary(kind) is None]
    if gone:
        return f"{' and '.join(gone)} not installed (make deps, or apt-get install {' '.join(gone)})"
    if not (DEPLOY_DIR / "prometheus" / "prometheus.yml").is_file():
        return f"no deploy/ directory beside the hexcast package ({DEPLOY_DIR})"
    return None


@dataclass(frozen=True)
class Receivers:
    """Where Alertmanager sends notifications: this stack's api and, if set, a Slack webhook."""

    api_url: str
    operator_token: str
    slack_webhook_url: str | None = None


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def prometheus_config(*, targets_file: Path, alertmanager: str,
                      rule_files: Sequence[Path] | None = None,
                      interval: str | None = None) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml scraping the processes listed in ``targets_file``,
    alerting ``alertmanager`` (host:port), with ``rule_files`` (default: deploy's rules) and,
    if given, another scrape and evaluation ``interval``."""
    config = _load(DEPLOY_DIR / "prometheus" / "prometheus.yml")
    if interval is not None:
        config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    rules = rule_files if rule_files is not None else [
        p for pattern in config["rule_files"] for p in sorted((DEPLOY_DIR / "prometheus").glob(pattern))]
    config["rule_files"] = [str(Path(p).resolve()) for p in rules]
    for job in config["scrape_configs"]:
        if "file_sd_configs" in job:
            job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "5s"}]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    return config


def alertmanager_config(*, receivers: Receivers, secrets_dir: Path,
                        route_timing: Mapping[str, str] | None = None) -> dict[str, Any]:
    """deploy/alertmanager/alertmanager.yml posting to ``receivers``: the secrets are written
    to files in ``secrets_dir`` (mode 0600) that the config names. ``route_timing`` replaces
    ``group_wait``, ``group_interval`` or ``repeat_interval`` (tests)."""
    config = _load(DEPLOY_DIR / "alertmanager" / "alertmanager.yml")
    config["route"].update(route_timing or {})
    token = _secret(secrets_dir / "operator_token", receivers.operator_token)
    slack = (_secret(secrets_dir / "slack_webhook_url", receivers.slack_webhook_url)
             if receivers.slack_webhook_url else None)
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if hook["url"].endswith(RECEIVER_PATH):
                hook["url"] = receivers.api_url.rstrip("/") + RECEIVER_PATH
                hook["http_config"]["authorization"]["credentials_file"] = str(token)
        if slack is None:
            receiver.pop("slack_configs", None)
        for chat in receiver.get("slack_configs", []):
            chat["api_url_file"] = str(slack)
    return config


def _secret(path: Path, value: str | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(value or "")
    return path


class _Server(Service):
    """One monitoring server: its rendered config and storage under ``root``, on 127.0.0.1."""

    kind = ""

    def __init__(self, root: Path, config: dict[str, Any], *, port: int | None = None,
                 startup_timeout: float = 30.0) -> None:
        binary = _binary(self.kind)
        if binary is None:
            raise ConfigError(f"{_BINARIES[self.kind][0]} not found on PATH (make deps)")
        self.root = root
        self.port = port if port is not None else free_port()
        self.config_path = root / f"{self.kind}.yml"
        self._config = config
        self._timeout = startup_timeout
        self._child = ChildProcess(self.kind, [binary, *self._flags()], root / f"{self.kind}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _flags(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> str:
        """Write the config, start the server and wait until it is ready; returns its URL."""
        started = time.monotonic()
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self._config, sort_keys=False))
        self._child.spawn()
        try:
            wait_http(f"{self.url}/-/ready", child=self._child, timeout=self._timeout)
        except ConfigError:
            self.stop()
            raise
        _log.info(f"{self.kind}_started", url=self.url, seconds=round(time.monotonic() - started, 3))
        return self.url

    def stop(self) -> None:
        self._child.terminate(grace_s=10.0)


class Prometheus(_Server):
    kind = "prometheus"

    def _flags(self) -> list[str]:
        return [f"--config.file={self.config_path}", f"--storage.tsdb.path={self.root / 'data'}",
                "--storage.tsdb.retention.time=7d", f"--web.listen-address=127.0.0.1:{self.port}"]


class Alertmanager(_Server):
    kind = "alertmanager"

    def _flags(self) -> list[str]:
        return [f"--config.file={self.config_path}", f"--storage.path={self.root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address="]  # one instance: no gossip port


@dataclass(frozen=True)
class Monitoring:
    prometheus: Prometheus
    alertmanager: Alertmanager

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url

    @property
    def alertmanager_url(self) -> str:
        return self.alertmanager.url


@contextlib.contextmanager
def running_monitoring(
    state_dir: Path, *, targets_file: Path, receivers: Receivers,
    prometheus_port: int | None = None, alertmanager_port: int | None = None,
    rule_files: Sequence[Path] | None = None, interval: str | None = None,
    route_timing: Mapping[str, str] | None = None,
) -> Iterator[Monitoring]:
    """Alertmanager, then Prometheus alerting it, for the ``with`` block; state under
    ``state_dir``. ``rule_files``, ``interval`` and ``route_timing`` replace deploy's (tests)."""
    am_root = state_dir / "alertmanager"
    am_config = alertmanager_config(receivers=receivers, secrets_dir=am_root / "secrets",
                                    route_timing=route_timing)
    with contextlib.ExitStack() as stack:
        alertmanager = stack.enter_context(Alertmanager(am_root, am_config, port=alertmanager_port))
        config = prometheus_config(targets_file=targets_file, rule_files=rule_files,
                                   alertmanager=f"127.0.0.1:{alertmanager.port}", interval=interval)
        prometheus = stack.enter_context(
            Prometheus(state_dir / "prometheus", config, port=prometheus_port))
        yield Monitoring(prometheus, alertmanager)
