"""The alerting configuration under deploy/ as the real tools read it: ``promtool`` checks the
Prometheus config and rules and runs the rules' unit tests (every alert has a firing and a
quiet case), ``amtool`` checks the Alertmanager config and its routing; the configs `hexcast up`
renders from them pass the same checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from hexcast.devstack.monitoring import DEPLOY_DIR, Receivers, alertmanager_config, prometheus_config

PROMETHEUS = DEPLOY_DIR / "prometheus"
ALERTMANAGER_YML = DEPLOY_DIR / "alertmanager" / "alertmanager.yml"


def _run(*argv: str | Path) -> tuple[int, str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120,
                          check=False)
    return done.returncode, done.stdout + done.stderr


def _alert_names() -> set[str]:
    names = set()
    for path in (PROMETHEUS / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["alert"] for rule in group["rules"] if "alert" in rule}
    return names


def _rule_tests() -> list[dict[str, Any]]:
    return [case for path in sorted((PROMETHEUS / "tests").glob("*.yml"))
            for test in yaml.safe_load(path.read_text())["tests"]
            for case in test.get("alert_rule_test", [])]


def test_promtool_accepts_the_prometheus_config_and_its_rules() -> None:
    code, out = _run("promtool", "check", "config", PROMETHEUS / "prometheus.yml")
    assert code == 0, out
    assert "is valid prometheus config file syntax" in out
    assert f"SUCCESS: {len(_alert_names())} rules found" in out
    code, out = _run("promtool", "check", "rules", *sorted((PROMETHEUS / "rules").glob("*.yml")))
    assert code == 0, out


def test_the_rules_pass_their_unit_tests() -> None:
    files = sorted((PROMETHEUS / "tests").glob("*.yml"))
    code, out = _run("promtool", "test", "rules", *files)
    assert code == 0, out
    assert out.count("SUCCESS") == len(files)
    assert "FAILED" not in out


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = _rule_tests()
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    names = _alert_names()
    assert len(names) >= 10
    assert names - firing == set()
    assert names - quiet == set()


def test_a_changed_rule_fails_its_unit_tests(tmp_path: Path) -> None:
    """The tests bite: the breaker alert held 4 minutes instead of 2 fails them."""
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, copy)
    rules = copy / "rules" / "hexcast.yml"
    text = rules.read_text()
    held = 'max by (provider) (hexcast_breaker_state{state="open"}) == 1\n        for: 2m'
    assert text.count(held) == 1
    rules.write_text(text.replace(held, held.replace("2m", "4m")))
    code, out = _run("promtool", "test", "rules", *sorted((copy / "tests").glob("*.yml")))
    assert code != 0
    assert "HexcastBreakerOpen" in out


def test_amtool_accepts_the_alertmanager_config() -> None:
    code, out = _run("amtool", "check-config", ALERTMANAGER_YML)
    assert code == 0, out
    assert "SUCCESS" in out
    assert "1 inhibit rules" in out


def _receiver(*labels: str) -> str:
    """The receiver Alertmanager's routing tree picks for an alert with ``labels``."""
    done = subprocess.run(["amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
                           *labels], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def test_alerts_route_to_chat_and_hexcast_and_route_notices_to_hexcast_only() -> None:
    assert _receiver("alertname=HexcastProviderErrorSpike", "tenant=7", "provider=p",
                     "severity=warning") == "operators"
    assert _receiver("alertname=HexcastRouteStopped", "provider=p", "severity=info") == "hexcast"


def test_the_configs_hexcast_up_renders_pass_the_same_checks(tmp_path: Path) -> None:
    config = prometheus_config(targets_file=tmp_path / "targets.json",
                               alertmanager="127.0.0.1:9093", interval="1s")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    code, out = _run("promtool", "check", "config", tmp_path / "prometheus.yml")
    assert code == 0, out
    assert f"SUCCESS: {len(_alert_names())} rules found" in out
    for slack in (None, "http://127.0.0.1:9/slack"):
        receivers = Receivers("http://127.0.0.1:8000", "t" * 32, slack_webhook_url=slack)
        rendered = alertmanager_config(receivers=receivers, secrets_dir=tmp_path / "secrets")
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(rendered))
        code, out = _run("amtool", "check-config", tmp_path / "alertmanager.yml")
        assert code == 0, out
        posts_to_chat = "api_url_file" in (tmp_path / "alertmanager.yml").read_text()
        assert posts_to_chat == (slack is not None)
    assert (tmp_path / "secrets" / "operator_token").read_text() == "t" * 32
    assert (tmp_path / "secrets" / "operator_token").stat().st_mode & 0o077 == 0
