"""docker-compose.yml parses, every hexcast service runs a real command with real settings, and
Prometheus, Alertmanager and Grafana run with deploy/ mounted and scrape every process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.main import get_command

from hexcast.cli import app
from hexcast.core.settings import Settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def test_infrastructure_services_have_health_checks() -> None:
    services = _services()
    assert services["kafka"]["image"].startswith("apache/kafka")
    for name in ("kafka", "postgres", "redis"):
        assert "healthcheck" in services[name], name


def test_hexcast_services_run_registered_commands() -> None:
    cli = get_command(app)
    known = set(cli.commands)  # type: ignore[attr-defined]
    hexcast = {n: s for n, s in _services().items() if "command" in s and "build" in s}
    assert {"api", "matcher", "provider-sim", "sender-geo"} <= set(hexcast)
    for name, service in hexcast.items():
        assert service["command"][0] in known, name


def test_environment_names_are_settings() -> None:
    fields = {f"HEXCAST_{name.upper()}" for name in Settings.model_fields}
    for name, service in _services().items():
        env = service.get("environment") or {}
        for var in env:
            if var.startswith("HEXCAST_"):
                assert var in fields, (name, var)


# --- monitoring: Prometheus, Alertmanager and Grafana with deploy/ mounted

ROOT = COMPOSE.parent
SCRAPED_PORT_VAR = "HEXCAST_METRICS_PORT"


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts from the checkout: target in the container → source path."""
    found: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def _in_container(service: dict[str, Any], path: str) -> Path:
    """The checkout file a container path of ``service`` is (through its bind mounts)."""
    for target, source in _mounts(service).items():
        if path.startswith(target + "/"):
            return source / path.removeprefix(target + "/")
    raise AssertionError(f"{path} is not mounted from the checkout")


def _flag(service: dict[str, Any], name: str) -> str:
    values: list[str] = [a.split("=", 1)[1] for a in service["command"]
                         if a.startswith(f"--{name}=")]
    assert len(values) == 1, name
    return values[0]


def test_monitoring_services_run_official_images_with_deploy_mounted() -> None:
    services = _services()
    images = {"prometheus": "prom/prometheus:", "alertmanager": "prom/alertmanager:",
              "grafana": "grafana/grafana:"}
    for name, image in images.items():
        assert services[name]["image"].startswith(image), name
        mounts = _mounts(services[name])
        assert mounts, name
        for source in mounts.values():
            assert source.exists(), source
            assert ROOT / "deploy" in (source, *source.parents), source
    prometheus_config = _in_container(services["prometheus"],
                                      _flag(services["prometheus"], "config.file"))
    assert prometheus_config == ROOT / "deploy" / "prometheus" / "prometheus.yml"
    alertmanager_config = _in_container(services["alertmanager"],
                                        _flag(services["alertmanager"], "config.file"))
    assert alertmanager_config == ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


def _prometheus() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    return config


def _scraped_targets() -> dict[str, str]:
    """``host:port`` → its ``process`` label, from the file_sd files Prometheus reads in compose."""
    targets: dict[str, str] = {}
    for job in _prometheus()["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            for pattern in sd["files"]:
                for path in (ROOT / "deploy" / "prometheus").glob(pattern):
                    for group in json.loads(path.read_text()):
                        for target in group["targets"]:
                            targets[target] = group["labels"]["process"]
    return targets


def test_every_hexcast_process_serves_metrics_that_prometheus_scrapes() -> None:
    processes = {n: s for n, s in _services().items()
                 if "build" in s and s.get("restart") != "no"}  # not the one-shot jobs
    assert {"api", "scheduler", "webhooks", "sender-bulk"} <= set(processes)
    scraped = _scraped_targets()
    for name, service in processes.items():
        env = service["environment"]
        assert env.get("HEXCAST_METRICS_HOST") == "0.0.0.0", name  # reachable from prometheus
        port = int(env[SCRAPED_PORT_VAR])
        assert scraped.get(f"{name}:{port}") == name, name
    assert set(scraped.values()) == set(processes)


def test_prometheus_alerts_the_compose_alertmanager_and_loads_the_rules() -> None:
    config = _prometheus()
    targets = [t for am in config["alerting"]["alertmanagers"]
               for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    assert "alertmanager" in _services()
    rule_files = [p for pattern in config["rule_files"]
                  for p in (ROOT / "deploy" / "prometheus").glob(pattern)]
    assert ROOT / "deploy" / "prometheus" / "rules" / "hexcast.yml" in rule_files


def test_alertmanager_reads_its_secrets_from_compose() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"]["alertmanager"]
    text = (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text()
    for secret in service["secrets"]:
        assert f"/run/secrets/{secret}" in text, secret
        assert compose["secrets"][secret]["environment"].startswith("HEXCAST_"), secret
    assert "http://api:8000/v1/admin/alerts/alertmanager" in text


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    grafana = _services()["grafana"]
    provisioning = _in_container(grafana, "/etc/grafana/provisioning/datasources")
    sources = [s for f in provisioning.glob("*.yml")
               for s in yaml.safe_load(f.read_text())["datasources"]]
    assert [s["url"] for s in sources] == ["http://prometheus:9090"]
    assert "9090:9090" in _services()["prometheus"]["ports"]
    providers = [p for f in _in_container(grafana, "/etc/grafana/provisioning/dashboards").glob("*.yml")
                 for p in yaml.safe_load(f.read_text())["providers"]]
    folders = [_in_container(grafana, p["options"]["path"] + "/x").parent for p in providers]
    dashboards = [json.loads(f.read_text()) for folder in folders for f in folder.glob("*.json")]
    assert [d["uid"] for d in dashboards] == ["hexcast"]
    uids = {t["datasource"]["uid"] for p in dashboards[0]["panels"] for t in p.get("targets", [])}
    assert uids == {s["uid"] for s in sources}
    titles = " ".join(p["title"].lower() for p in dashboards[0]["panels"])
    for topic in ("lane", "delivery rate", "p95", "errors", "breaker", "progress", "late", "dlq",
                  "webhook backlog", "lag"):
        assert topic in titles, topic
