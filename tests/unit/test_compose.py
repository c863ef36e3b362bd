"""docker-compose.yml parses, every hexcast service runs a real command with real settings,
Prometheus, Alertmanager and Grafana run with deploy/ mounted and scrape every process, and the
stack is durable: three KRaft Kafka nodes, replication factor 3 and min ISR 2 for the brokers and
for hexcast's own topics, named volumes for Kafka, PostgreSQL and Redis, Redis's AOF on
(:func:`assert_durable`, also run on ``docker-compose config``'s output by
tests/integration/test_compose.py)."""

from __future__ import annotations

import json
import re
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


KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")


def test_infrastructure_services_have_health_checks() -> None:
    services = _services()
    for name in KAFKA_NODES:
        assert services[name]["image"].startswith("apache/kafka"), name
    for name in (*KAFKA_NODES, "postgres", "redis"):
        assert "healthcheck" in services[name], name


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, whether written as a mapping or a list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _named_volume(compose: dict[str, Any], service: str, target: str) -> str:
    """The named volume (declared under ``volumes:``) mounted at ``target`` in ``service``."""
    for volume in compose["services"][service].get("volumes", []):
        if isinstance(volume, dict):  # docker-compose config's long form
            source, at = volume.get("source", ""), volume["target"]
        else:
            source, at, *_ = volume.split(":")
        if at == target:
            assert source in (compose.get("volumes") or {}), (service, source)
            return str(source)
    raise AssertionError(f"{service}: nothing mounted at {target}")


def assert_durable(compose: dict[str, Any]) -> None:
    """Three combined broker + controller nodes in one quorum, RF 3 and min ISR 2 for the
    brokers' defaults, internal topics and hexcast's topics, producers idempotent, all three
    brokers bootstrapped; Kafka, PostgreSQL and Redis data on named volumes; Redis's AOF on."""
    services = compose["services"]
    kafka = {name: _env(services[name]) for name in KAFKA_NODES}
    assert {env["KAFKA_NODE_ID"] for env in kafka.values()} == {"1", "2", "3"}
    voters = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    for name, env in kafka.items():
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller", name
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters, name
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092", name
        for key in ("DEFAULT_REPLICATION_FACTOR", "OFFSETS_TOPIC_REPLICATION_FACTOR",
                    "TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
            assert env[f"KAFKA_{key}"] == "3", (name, key)
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert _named_volume(compose, name, env["KAFKA_LOG_DIRS"]) == f"{name}-data"
    assert len({services[n]["image"] for n in KAFKA_NODES}) == 1
    hexcast = {n: _env(s) for n, s in services.items() if "build" in s}
    assert {"api", "topics", "scheduler", "sender-bulk"} <= set(hexcast)
    for name, env in hexcast.items():
        assert env["HEXCAST_TOPIC_REPLICATION_FACTOR"] == "3", name
        assert env["HEXCAST_TOPIC_MIN_INSYNC_REPLICAS"] == "2", name
        assert env["HEXCAST_KAFKA_IDEMPOTENT_PRODUCER"] == "true", name
        brokers = env["HEXCAST_BROKER_URL"].removeprefix("kafka://").split(",")
        assert sorted(brokers) == [f"{n}:9092" for n in KAFKA_NODES], name
    assert _named_volume(compose, "postgres", "/var/lib/postgresql/data")
    assert _named_volume(compose, "redis", "/data")
    command = services["redis"]["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"


def test_the_stack_is_durable() -> None:
    assert_durable(yaml.safe_load(COMPOSE.read_text()))


def test_hexcast_settings_take_the_compose_values() -> None:
    env = _env(_services()["api"])
    settings = Settings(**{k.removeprefix("HEXCAST_").lower(): v for k, v in env.items()
                           if k.startswith("HEXCAST_") and "${" not in v})
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (3, 2)
    assert settings.kafka_idempotent_producer


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
    """alertmanager.yml reads files under /run/secrets/ (a tmpfs); the entrypoint writes each
    from a HEXCAST_ variable that compose passes (docker-compose 1.29 has no `secrets:` from
    `environment:`), then runs alertmanager with the service's flags."""
    service = _services()["alertmanager"]
    text = (ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text()
    script = service["entrypoint"][2]
    read = set(re.findall(r"/run/secrets/(\w+)", text))
    written = dict(re.findall(r'printf %s "\$\$(HEXCAST_\w+)" > /run/secrets/(\w+)', script))
    assert read
    assert read == set(written.values())
    assert set(written) <= set(_env(service))
    assert service["tmpfs"] == ["/run/secrets"]
    assert script.rstrip().endswith('exec /bin/alertmanager "$$@"')
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
