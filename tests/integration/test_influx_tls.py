"""The InfluxDB client's certificate checks against a real influxd serving HTTPS with a test CA.

With `ca_file` the sink writes; with the system's CAs only (the default) it refuses the server
and keeps the rows in the ledger; `verify_tls = false` writes without checking (and says so).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.errors import ConfigError, SinkWriteError, TransientError
from gateway.ledger.store import Ledger
from gateway.settings.site import InfluxConfig, RetryConfig
from gateway.sinks.influx import CURSOR, InfluxSink
from tests.factories import minute_result, results_of
from tests.services.influxd import HTTP_TIMEOUT_S, InfluxQueryError, InfluxService
from tests.support.influx import influx_rows
from tests.support.tls import make_pki

pytestmark = pytest.mark.integration


class HttpsInfluxService(InfluxService):
    """influxd with HTTPS on its HTTP port, certificate `server.crt` of a test PKI (127.0.0.1)."""

    def __init__(self, pki: Path) -> None:
        super().__init__(flux=False)
        self.pki = pki
        self.url = self.url.replace("http://", "https://")
        self._ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))

    def environment(self) -> dict[str, str]:
        return {
            **super().environment(),
            "INFLUXDB_HTTP_HTTPS_ENABLED": "true",
            "INFLUXDB_HTTP_HTTPS_CERTIFICATE": str(self.pki / "server.crt"),
            "INFLUXDB_HTTP_HTTPS_PRIVATE_KEY": str(self.pki / "server.key"),
        }

    def _request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S, context=self._ctx) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace").strip()
            raise InfluxQueryError(f"{method} {self.url}{path} -> HTTP {exc.code}: {detail}") from exc


@pytest.fixture(scope="module")
def https_influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsInfluxService]:
    with HttpsInfluxService(make_pki(tmp_path_factory.mktemp("pki"))) as server:
        yield server


def config(server: HttpsInfluxService, measurement: str, **tls: Any) -> InfluxConfig:
    return InfluxConfig(
        enabled=True,
        url=server.url,
        token=server.token,
        org=server.org,
        bucket=server.bucket,
        measurement=measurement,
        timeout_s=5.0,
        **tls,
    )


async def drain(cfg: InfluxConfig, ledger: Ledger) -> InfluxSink:
    sink = InfluxSink(cfg, ledger, RetryConfig())
    async with sink:
        await sink.drain_once()
    return sink


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    lg = Ledger(tmp_path / "ledger.sqlite")
    lg.append(results_of([minute_result(m) for m in range(3)]))
    yield lg
    lg.close()


async def test_the_ca_file_lets_the_sink_write_over_https(https_influxd: HttpsInfluxService, ledger: Ledger) -> None:
    await drain(config(https_influxd, "tls_ca", ca_file=https_influxd.pki / "ca.crt"), ledger)
    assert ledger.outbox.cursor(CURSOR) == ledger.head_seq
    assert len(influx_rows(https_influxd, "tls_ca")) == 3


async def test_by_default_a_server_the_system_cas_do_not_sign_is_refused(
    https_influxd: HttpsInfluxService, ledger: Ledger
) -> None:
    cfg = config(https_influxd, "tls_default")
    assert cfg.verify_tls and cfg.ca_file is None
    with pytest.raises(SinkWriteError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await drain(cfg, ledger)
    assert ledger.outbox.cursor(CURSOR) == 0  # the rows wait in the ledger
    assert influx_rows(https_influxd, "tls_default") == {}


async def test_a_ca_that_did_not_sign_the_server_is_refused(https_influxd: HttpsInfluxService, ledger: Ledger) -> None:
    with pytest.raises(SinkWriteError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await drain(config(https_influxd, "tls_other", ca_file=https_influxd.pki / "other-ca.crt"), ledger)
    assert ledger.outbox.cursor(CURSOR) == 0


async def test_verify_tls_false_writes_and_warns(
    https_influxd: HttpsInfluxService, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.sinks.influx"):
        await drain(config(https_influxd, "tls_off", verify_tls=False), ledger)
    assert len(influx_rows(https_influxd, "tls_off")) == 3
    assert "verify_tls = false" in caplog.text and "influx.ca_file" in caplog.text


def test_an_unreadable_ca_file_is_a_config_error_at_start(tmp_path: Path, ledger: Ledger) -> None:
    cfg = InfluxConfig(enabled=True, url="https://127.0.0.1:8086", ca_file=tmp_path / "missing.crt")
    with pytest.raises(ConfigError, match=r"influx\.ca_file: cannot read .*missing\.crt"):
        InfluxSink(cfg, ledger, RetryConfig())


async def test_a_ca_file_gone_after_the_start_is_a_retried_failure(tmp_path: Path, ledger: Ledger) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not a certificate\n")
    sink = InfluxSink(InfluxConfig(enabled=True, url="https://127.0.0.1:8086", ca_file=ca), ledger, RetryConfig())
    with pytest.raises(TransientError, match=r"cannot prepare TLS .*influx\.ca_file"):
        async with sink:
            await asyncio.sleep(0)
