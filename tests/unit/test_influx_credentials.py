"""Credentials in `influx.url` (hardening finding 5).

Regression: with `url = "http://user:pw@host"` the password was printed in INFO and ERROR logs,
and with `token` set too every write raised aiohttp's ValueError ("Cannot combine AUTHORIZATION
header with AUTH argument or credentials encoded in URL"), which the sink did not translate, so
the gateway died a second after start whenever rows were waiting. Now the URL's user:password is
the token (InfluxDB 1.8 takes `user:password` as one) and leaves the URL; URL credentials and a
token together are a configuration error; and no exception of a write ends the sink's task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway.cli import main
from gateway.core.errors import ConfigError
from gateway.ledger.store import Ledger
from gateway.settings.load import load_settings
from gateway.settings.site import InfluxConfig, RetryConfig
from gateway.sinks.influx import CURSOR, InfluxSink
from tests.factories import minute_result as result
from tests.factories import results_of

PASSWORD = "pw-in-url-5f3b9c"
URL = f"http://emgate:{PASSWORD}@127.0.0.1:8086"


def site_file(tmp_path: Path, influx: str) -> Path:
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\nname = "url-works"\n\n[ledger]\npath = "{tmp_path / "l.sqlite"}"\n\n[influx]\nenabled = true\n{influx}'
    )
    return site


def test_url_credentials_become_the_token_and_leave_the_url(tmp_path: Path) -> None:
    settings = load_settings(site_file(tmp_path, f'url = "http://emgate:{PASSWORD}%40x@127.0.0.1:8086/"\n'))
    assert settings.influx.url == "http://127.0.0.1:8086/"
    assert settings.influx.token_value() == f"emgate:{PASSWORD}@x"  # percent-decoded
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    # a copy made from a dump (replay does this) keeps them, as the token
    again = type(settings)(**settings.model_dump())
    assert again.influx.url == settings.influx.url and again.influx.token_value() == settings.influx.token_value()


@pytest.mark.parametrize(
    ("extra", "given"),
    [('token = "emgate:other"\n', "token"), ('token_file = "influx.token"\n', "token_file")],
    ids=["token", "token_file"],
)
def test_url_credentials_and_a_token_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, given: str
) -> None:
    site = site_file(tmp_path, f'url = "{URL}"\n{extra}')
    assert main(["check-config", str(site)]) == 2
    assert main(["run", "--config", str(site), "--quiet"]) == 2
    err = capsys.readouterr().err
    expected = (
        f"site.toml:7: influx: url 'http://127.0.0.1:8086' carries a user and password and {given} is set too; give one of them"
    )
    assert err.count(expected) == 2, err
    assert PASSWORD not in err and "Traceback" not in err


def test_url_credentials_and_a_token_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMGATE__INFLUX__TOKEN", "emgate:from-env")
    assert main(["check-config", str(site_file(tmp_path, f'url = "{URL}"\n'))]) == 2
    err = capsys.readouterr().err
    assert "and token is set too" in err and PASSWORD not in err and "from-env" not in err


@pytest.mark.parametrize("url", ["http://emgate@127.0.0.1:8086", f"http://:{PASSWORD}@127.0.0.1:8086"])
def test_incomplete_url_credentials_are_a_config_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(site_file(tmp_path, f'url = "{url}"\n'))
    (problem,) = caught.value.problems
    assert "influx: url 'http://127.0.0.1:8086' carries incomplete credentials" in problem and PASSWORD not in problem


@pytest.mark.parametrize("url", ["127.0.0.1:8086", "ftp://127.0.0.1", f"http://emgate:{PASSWORD}@127.0.0.1:99999"])
def test_a_url_the_client_cannot_use_is_a_config_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(site_file(tmp_path, f'url = "{url}"\n'))
    (problem,) = caught.value.problems
    assert "site.toml:9: influx.url:" in problem and "is not an InfluxDB address; write it as http://host:8086" in problem
    assert PASSWORD not in problem


# -- the sink, with a stand-in for influxdb-client --------------------------------------------


class FakeWriteApi:
    def __init__(self, client: FakeClient) -> None:
        self._client = client

    async def write(self, **kwargs: Any) -> None:
        self._client.writes += 1
        if self._client.failures:
            raise self._client.failures.pop(0)
        self._client.written.append(kwargs["record"])


class FakeClient:
    built: ClassVar[list[FakeClient]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.failures: list[Exception] = []
        self.writes = 0
        self.written: list[str] = []
        FakeClient.built.append(self)

    def write_api(self) -> FakeWriteApi:
        return FakeWriteApi(self)

    async def close(self) -> None:
        pass


class FakeInfluxDBError(Exception):
    response = None


class WritePrecision:
    S = "s"


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeClient]]:
    FakeClient.built = []
    monkeypatch.setattr("gateway.sinks.influx._client_api", lambda: (FakeClient, FakeInfluxDBError, WritePrecision))
    yield FakeClient


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    lg = Ledger(tmp_path / "ledger.sqlite")
    yield lg
    lg.close()


async def test_the_client_gets_the_url_without_credentials_and_them_as_the_token(
    fake_client: type[FakeClient], ledger: Ledger
) -> None:
    ledger.append(results_of([result(0)]))
    async with InfluxSink(InfluxConfig(enabled=True, url=URL), ledger, RetryConfig()) as sink:
        assert await sink.drain_once() == 1
    (client,) = fake_client.built
    assert client.kwargs["url"] == "http://127.0.0.1:8086"
    assert client.kwargs["token"] == f"emgate:{PASSWORD}"


async def test_no_write_error_ends_the_sink_and_none_is_logged_with_credentials(
    fake_client: type[FakeClient], ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.append(results_of([result(m) for m in range(3)]))
    sink = InfluxSink(InfluxConfig(enabled=True, url=URL), ledger, RetryConfig(base_s=0.01, cap_s=0.05))
    with caplog.at_level(logging.DEBUG, logger="gateway"):
        async with sink:
            fake_client.built[0].failures = [
                # what aiohttp raised for URL credentials next to a token, echoing the URL as a proxy might
                ValueError(f"Cannot combine AUTHORIZATION header with credentials encoded in URL {URL}"),
                RuntimeError(f"unexpected from the client: Token emgate:{PASSWORD}"),
                TypeError("anything else"),
            ]
            task = asyncio.create_task(sink.run(), name="influx-test")
            try:
                async with asyncio.timeout(10):
                    while ledger.outbox.cursor(CURSOR) < ledger.head_seq:
                        assert not task.done(), task.exception()
                        await asyncio.sleep(0.01)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    client = fake_client.built[0]
    assert client.writes == 4 and len(client.written) == 1 and sink.counters.batches_failed == 3
    assert not sink.counters.failing
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # the state change, not every retry
    assert "write failed: ValueError: Cannot combine" in errors[0] and "http://127.0.0.1:8086" in errors[0]
    assert any("recovered after 3 failed attempt(s)" in r.getMessage() for r in caplog.records)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in logged and PASSWORD not in sink.counters.last_error


async def test_a_token_file_unreadable_at_start_is_a_config_error(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"influx\.token_file: cannot read .*nope\.token"):
        InfluxSink(InfluxConfig(enabled=True, token_file=tmp_path / "nope.token"), ledger, RetryConfig())
