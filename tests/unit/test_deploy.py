"""deploy/: the systemd unit, the Dockerfile and compose.yaml parse and hold what they promise."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.commands.demo import DEMO_PLANT_CONFIG as DEMO_CONFIG  # deploy/ runs the demo plant
from gateway.settings.load import load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "emgate.service"


def unit_service() -> dict[str, list[str]]:
    """[Service] keys -> every value given (systemd allows a key more than once)."""
    out: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section == "Service":
            out.setdefault(key, []).append(value)
    return out


def test_unit_runs_hardened_as_its_own_user() -> None:
    svc = unit_service()
    assert svc["User"] == ["emgate"] and svc["Group"] == ["emgate"]
    assert svc["ProtectSystem"] == ["strict"]
    assert "/var/lib/emgate" in svc["ReadWritePaths"]
    assert svc["StateDirectory"] == ["emgate"]
    assert svc["Restart"] == ["on-failure"]
    assert svc["RestartPreventExitStatus"] == ["2"]  # a config error is not fixed by restarting
    assert svc["NoNewPrivileges"] == ["yes"] and svc["CapabilityBoundingSet"] == [""]
    assert "KillSignal" not in svc  # SIGTERM, handled like Ctrl-C
    assert svc["SuccessExitStatus"] == ["130"]
    assert "WatchdogSec" not in svc  # no sd_notify in the gateway, so no watchdog
    cmd = svc["ExecStart"][0].split()
    assert cmd[1:4] == ["--log-format", "json", "run"]
    assert "--http" in cmd and cmd[cmd.index("--http") + 1].startswith("127.0.0.1:")


def test_unit_passes_systemd_analyze_verify(tmp_path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    # verify checks that ExecStart's binary exists: point it at a stub, change nothing else
    stub = tmp_path / "emgate"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / "emgate.service"
    unit.write_text(UNIT.read_text().replace("/opt/emgate/bin/emgate", str(stub)))
    res = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "" and res.stderr.strip() == "", res.stderr  # unknown keys are warnings
    sec = subprocess.run(
        [tool, "security", "--offline=true", str(unit)], capture_output=True, text=True, timeout=60
    )
    if sec.returncode == 0 or "Overall exposure level" in sec.stdout:
        level = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", sec.stdout).group(1))
        assert level <= 2.0, sec.stdout[-2000:]


def compose() -> dict:
    yaml = pytest.importorskip("yaml", reason="needs PyYAML (test extra)")
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_has_the_four_services_on_loopback_ports() -> None:
    c = compose()
    assert set(c["services"]) == {"emgate", "mosquitto", "influxdb", "grafana"}
    for name, svc in c["services"].items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith((".", "/")):
                assert (DEPLOY / src).exists(), f"{name}: bind mount {src} does not exist"
            elif not src.startswith("$"):
                assert src in c["volumes"], f"{name}: volume {src} is not declared"
    emgate = c["services"]["emgate"]
    assert emgate["stop_signal"] == "SIGTERM"
    assert (REPO / emgate["build"]["dockerfile"]).exists()
    assert c["services"]["influxdb"]["environment"]["INFLUXDB_HTTP_FLUX_ENABLED"] == "true"
    default_site = re.match(r"\$\{EMGATE_SITE_FILE:-([^}]+)\}", emgate["volumes"][0]).group(1)
    assert (DEPLOY / default_site).resolve() == DEMO_CONFIG


def test_compose_environment_names_reach_the_settings(monkeypatch) -> None:
    env = compose()["services"]["emgate"]["environment"]
    for key, value in env.items():
        assert key.startswith("EMGATE__")
        monkeypatch.setenv(key, value.replace("${INFLUX_PASSWORD:?set INFLUX_PASSWORD}", "secret"))
    settings = load_settings(DEMO_CONFIG)
    assert settings.influx.enabled and settings.influx.url == "http://influxdb:8086"
    assert settings.influx.token_value() == "emgate:secret"
    assert str(settings.ledger.path) == "/var/lib/emgate/ledger.sqlite"
    assert settings.site.name == "demo-works"  # the rest still comes from the file


def test_dockerfile_runs_unprivileged_and_copies_what_exists() -> None:
    lines = [
        ln.strip()
        for ln in (DEPLOY / "Dockerfile").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    instructions = [ln.split()[0] for ln in lines if ln.split()[0].isupper()]
    assert instructions[0] == "FROM" and lines[0].startswith("FROM python:3.11")
    assert "USER emgate" in lines and "STOPSIGNAL SIGTERM" in lines and "EXPOSE 8080" in lines
    for ln in lines:
        if ln.startswith("COPY "):
            for src in ln.split()[1:-1]:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"
    entry = json.loads(next(ln for ln in lines if ln.startswith("ENTRYPOINT"))[len("ENTRYPOINT") :])
    # the last CMD: an earlier one continues the HEALTHCHECK instruction
    cmd = json.loads([ln for ln in lines if ln.startswith("CMD")][-1][len("CMD") :])
    assert entry == ["emgate", "--log-format", "json"] and cmd[0] == "run" and "--http" in cmd


def test_every_yaml_file_in_deploy_parses() -> None:
    yaml = pytest.importorskip("yaml", reason="needs PyYAML (test extra)")
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        assert isinstance(yaml.safe_load(f.read_text()), dict), f
