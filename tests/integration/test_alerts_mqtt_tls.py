"""The alert publisher over TLS with a password from a file, against a real Mosquitto.

The broker's TLS listener asks for a client certificate and a password; a second listener
serves a certificate for another name. An independent subscriber (Debian's mosquitto_sub, over
the same TLS listener) sees the alert the publisher delivered; the publisher refuses a server
whose CA or name does not match, and a wrong password.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.alerts.budget_stage import AlertStage
from gateway.cli import main
from gateway.core.errors import ConfigError, SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.core.model import MinuteResult
from gateway.ledger.alerts_table import AlertStore
from gateway.settings.alerts import AlertMqttConfig, AlertsConfig
from gateway.sinks.alerts_mqtt import AlertMqttSink
from tests import factories
from tests.services.binaries import require_binary
from tests.services.mosquitto import MosquittoService
from tests.services.ports import free_port
from tests.support.tls import make_pki

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto_sub (Debian mosquitto-clients) not installed"),
]

SITE = "works"
T0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
USER, PASSWORD = "alerts", "tls-s3cret"


def minute(i: int, coverage: float) -> list[MinuteResult]:
    return [
        factories.minute_result(
            i,
            "sinter",
            "coke_breeze",
            50.0,
            start=T0,
            site=SITE,
            activity=0.02,
            ef_kg_per_unit=2500.0,
            coverage=coverage,
            quality="measured" if coverage >= 0.75 else "substituted",
        )
    ]


def tls_broker(make: Callable[..., MosquittoService], pki: Path) -> tuple[MosquittoService, int, int]:
    """A broker with a TLS listener (client certificate and password required) and one whose
    certificate names another host; returns it and both TLS ports."""
    pw = pki / "passwd"
    subprocess.run(
        [str(require_binary("mosquitto_passwd")), "-c", "-b", str(pw), USER, PASSWORD], check=True, capture_output=True
    )
    pw.chmod(0o600)
    good, wrong = free_port(), free_port()
    broker = make(
        f"listener {good} 127.0.0.1\ncafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        "require_certificate true\n"
        f"listener {wrong} 127.0.0.1\ncafile {pki}/ca.crt\ncertfile {pki}/wrong-name.crt\nkeyfile {pki}/wrong-name.key\n",
        allow_anonymous=False,
        password_file=pw,
    )
    return broker, good, wrong


def mqtt_config(pki: Path, port: int, prefix: str, **tls: Any) -> AlertMqttConfig:
    secret = pki / "alerts.pass"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    tls_section = {
        "ca_file": pki / "ca.crt",
        "cert_file": pki / "client.crt",
        "key_file": pki / "client.key",
        **tls,
    }
    return AlertMqttConfig(port=port, topic_prefix=prefix, username=USER, password_file=secret, tls=tls_section, timeout_s=5.0)


def tls_subscriber(pki: Path, port: int, topic: str, out: Path) -> subprocess.Popen[bytes]:
    """mosquitto_sub over the TLS listener with the client certificate and password: the first message, to `out`."""
    with out.open("w") as fh:
        return subprocess.Popen(
            [
                str(require_binary("mosquitto_sub")),
                *("-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-C", "1", "-W", "30"),
                *("--cafile", str(pki / "ca.crt"), "--cert", str(pki / "client.crt"), "--key", str(pki / "client.key")),
                *("-u", USER, "-P", PASSWORD, "-F", "%t %p"),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


async def test_an_alert_is_delivered_over_tls_with_the_password_from_a_file(
    mosquitto_factory: Callable[..., MosquittoService], tmp_path: Path, unique_topic: str
) -> None:
    pki = make_pki(tmp_path)
    broker, port, _ = tls_broker(mosquitto_factory, pki)
    topic = f"{unique_topic}/{SITE}/alerts"
    out = tmp_path / "received.txt"
    sub = tls_subscriber(pki, port, topic, out)
    try:
        await asyncio.to_thread(broker.wait_for_subscription, topic)
        cfg = AlertsConfig(
            enabled=True,
            mqtt=mqtt_config(pki, port, unique_topic),
            spike={"enabled": False},
            data_quality={"coverage": {"raise_at": {"warning": 0.25}, "clear_at": 0.1, "min_duration_s": 60}},
        )
        store = AlertStore(tmp_path / "ledger.sqlite")
        stage = AlertStage(SITE, "UTC", None, cfg, store)
        for i in range(3):  # 30 % coverage for 2 minutes: one coverage alert raised
            stage(factories.results_of(minute(i, 0.3)))
        assert len(store.unpublished()) == 1
        assert cfg.mqtt is not None
        health = ComponentHealth("alerts-mqtt")
        sink = AlertMqttSink(cfg.mqtt, SITE, store, stage, health)
        async with sink:
            await sink.drain_once()
        assert sink.published == 1 and not store.unpublished()
        await asyncio.to_thread(sub.wait, 30)
        received = out.read_text()
        assert received.startswith(f"{topic} "), received
        assert '"subject":"coverage"' in received and '"state":"raised"' in received, received
    finally:
        if sub.poll() is None:
            sub.terminate()
            sub.wait(5)


# paho-mqtt 2.2 (_ssl_wrap_socket) does not close the socket of a failed handshake: the garbage
# collector does, once the exception's traceback goes, with a ResourceWarning (collected below)
@pytest.mark.filterwarnings("ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("listener", "tls", "password", "expected"),
    [
        ("good", {"ca_file": "other-ca.crt"}, PASSWORD, "certificate verify failed"),
        ("wrong", {}, PASSWORD, "certificate verify failed|match"),
        ("good", {}, "not-the-password", "connect failed"),
    ],
    ids=["ca-mismatch", "name-mismatch", "wrong-password"],
)
async def test_a_server_whose_ca_or_name_does_not_match_is_refused(
    mosquitto_factory: Callable[..., MosquittoService],
    tmp_path: Path,
    unique_topic: str,
    listener: str,
    tls: dict[str, str],
    password: str,
    expected: str,
) -> None:
    pki = make_pki(tmp_path)
    _, good, wrong = tls_broker(mosquitto_factory, pki)
    port = good if listener == "good" else wrong
    cfg = mqtt_config(pki, port, unique_topic, **{k: pki / v for k, v in tls.items()})
    (pki / "alerts.pass").write_text(password)
    store = AlertStore(tmp_path / "ledger.sqlite")
    stage = AlertStage(SITE, "UTC", None, AlertsConfig(enabled=True, mqtt=cfg), store)
    sink = AlertMqttSink(cfg, SITE, store, stage)
    with pytest.raises(SourceUnavailable, match=expected) as caught:
        async with sink:
            pass
    message = str(caught.value)
    del caught  # its traceback holds paho's socket of the failed handshake
    gc.collect()  # finalize that socket here, under this test's filter, not during a later test
    assert PASSWORD not in message and "not-the-password" not in message
    if listener == "wrong":  # the name is what failed: skipping only the name check connects
        lax = mqtt_config(pki, port, unique_topic, insecure=True)
        async with AlertMqttSink(lax, SITE, store, stage) as connected:
            await connected.drain_once()  # the retained active set, acknowledged by the broker
            assert connected._sent_active == stage.active_version


def test_password_and_tls_files_are_settings_of_the_publisher(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="password or password_file, not both"):
        AlertMqttConfig(username="u", password="p", password_file=tmp_path / "p")
    with pytest.raises(ValueError, match=r"key_file is set without tls\.cert_file"):
        AlertMqttConfig(tls={"key_file": tmp_path / "k"})
    cfg = AlertMqttConfig(username="u", password_file=tmp_path / "missing")
    with pytest.raises(ValueError, match=r"alerts\.mqtt\.password_file: cannot read .*missing"):
        cfg.password_value()


def test_unusable_password_or_tls_files_stop_the_start(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "ledger.sqlite")
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    for cfg, expected in (
        (AlertMqttConfig(username="u", password_file=tmp_path / "missing"), r"password_file: cannot read .*missing"),
        (AlertMqttConfig(tls={"ca_file": tmp_path / "nope.crt"}), r"cannot prepare credentials or TLS"),
        (AlertMqttConfig(tls={"ca_file": tmp_path / "bad.pem"}), r"cannot prepare credentials or TLS"),
    ):
        stage = AlertStage(SITE, "UTC", None, AlertsConfig(enabled=True, mqtt=cfg), store)
        with pytest.raises(ConfigError, match=expected):
            AlertMqttSink(cfg, SITE, store, stage)


async def test_a_password_file_gone_after_the_start_is_a_retried_connect_failure(tmp_path: Path) -> None:
    secret = tmp_path / "alerts.pass"
    secret.write_text(PASSWORD)
    cfg = AlertMqttConfig(port=free_port(), username="u", password_file=secret)
    store = AlertStore(tmp_path / "ledger.sqlite")
    stage = AlertStage(SITE, "UTC", None, AlertsConfig(enabled=True, mqtt=cfg), store)
    sink = AlertMqttSink(cfg, SITE, store, stage)
    secret.unlink()
    with pytest.raises(SourceUnavailable, match=r"password_file: cannot read .*alerts\.pass"):
        async with sink:
            pass


def test_run_exits_2_for_an_unreadable_alerts_password_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\nname = "{SITE}"\n[ledger]\npath = "{tmp_path / "l.sqlite"}"\n'
        f'[alerts]\nenabled = true\n[alerts.mqtt]\nusername = "u"\npassword_file = "{tmp_path / "missing.pass"}"\n'
    )
    assert main(["run", "--config", str(site), "--quiet", "--minutes", "1"]) == 2
    err = capsys.readouterr().err
    assert "alerts.mqtt.password_file: cannot read" in err and "missing.pass" in err and "Traceback" not in err
