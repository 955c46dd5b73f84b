"""Who may read the status page: loopback by default, a token elsewhere, HTTPS, headers, limits.

Binding an address other than loopback is not possible on the test machine, so the refusal is
checked on the configuration (HttpConfig, `check-config`) and on StatusServer's entry before it
binds; the token is enforced on a loopback bind, where it applies too once configured.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from gateway.cli import main
from gateway.core.errors import ConfigError
from gateway.http.server import COOKIE, StatusServer
from gateway.settings.load import load_settings
from gateway.settings.site import HttpConfig
from tests.support.status_gateway import FakeGateway, history
from tests.support.tls import make_pki

TOKEN = "5f0c1e2d3b4a69788796a5b4c3d2e1f0a9b8"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@pytest.fixture
def gw(tmp_path: Path) -> FakeGateway:
    return FakeGateway(tmp_path / "ledger.sqlite")


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "http.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def assert_security_headers(resp: aiohttp.ClientResponse) -> None:
    for key, value in HEADERS.items():
        assert resp.headers.get(key) == value, (resp.url, key, resp.headers.get(key))
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'"), resp.url


def test_the_default_bind_is_loopback() -> None:
    assert HttpConfig().bind == "127.0.0.1:8080"


@pytest.mark.parametrize("bind", ["0.0.0.0:8080", "[::]:8080", "192.168.10.5:8080", "gateway.plant.example:8080"])
def test_a_bind_other_than_loopback_needs_a_token_or_insecure_no_auth(bind: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"reachable from other machines.*token_file.*insecure_no_auth"):
        HttpConfig(bind=bind)
    assert HttpConfig(bind=bind, token_file=tmp_path / "t").token_file == tmp_path / "t"
    assert HttpConfig(bind=bind, insecure_no_auth=True).insecure_no_auth
    for loopback in ("127.0.0.1:8080", "127.0.0.2:80", "[::1]:8080", "localhost:8080"):
        assert HttpConfig(bind=loopback).bind == loopback


def test_cert_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cert_file and key_file together"):
        HttpConfig(cert_file=tmp_path / "c.pem")


@pytest.mark.parametrize("bind", ["0.0.0.0:0", "[::]:0", "10.1.2.3:0"])
async def test_the_server_refuses_to_start_on_another_address_without_a_token(gw: FakeGateway, bind: str) -> None:
    # `--http HOST:PORT` overrides [http] bind, so the server checks the address it is given
    server = StatusServer(gw, bind, history(gw))
    with pytest.raises(ConfigError, match=r"status page: http bind .* reachable from other machines"):
        async with server:
            pytest.fail("the server must not start")
    assert server.url == ""  # nothing was bound


def test_check_config_and_run_exit_2_for_an_open_bind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site.toml"
    site.write_text(f'[site]\nname = "works"\n[ledger]\npath = "{tmp_path / "l.sqlite"}"\n[http]\nbind = "0.0.0.0:8080"\n')
    assert main(["check-config", str(site)]) == 2
    err = capsys.readouterr().err
    assert "reachable from other machines" in err and "token_file" in err and "Traceback" not in err
    site.write_text(f'[site]\nname = "works"\n[ledger]\npath = "{tmp_path / "l.sqlite"}"\n')
    assert main(["run", "--config", str(site), "--quiet", "--http", "0.0.0.0:0", "--minutes", "1"]) == 2
    err = capsys.readouterr().err
    assert "reachable from other machines" in err and "Traceback" not in err


async def test_the_token_is_enforced_by_header_or_cookie(gw: FakeGateway, token_file: Path) -> None:
    access = HttpConfig(bind="127.0.0.1:0", token_file=token_file)
    jar = aiohttp.CookieJar(unsafe=True)  # the server is an IP address
    async with (
        StatusServer(gw, "127.0.0.1:0", history(gw), access=access) as server,
        aiohttp.ClientSession(cookie_jar=jar) as http,
    ):
        for path in ("", "api/status", "metrics", "events", "page.js"):
            async with http.get(server.url + path) as r:
                assert r.status == 401, path
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
                assert TOKEN not in await r.text()
                assert_security_headers(r)
        for wrong in ({"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
            async with http.get(server.url + "api/status", headers=wrong) as r:
                assert r.status == 401
        async with http.get(server.url + "?token=nope", allow_redirects=False) as r:
            assert r.status == 401
        async with http.get(server.url + "healthz") as r:
            assert r.status == 200 and await r.text() == "ok\n"

        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(server.url + "metrics", headers=bearer) as r:
            assert r.status == 200 and "emgate_component_up" in await r.text()
        async with http.get(server.url + "api/status", headers=bearer) as r:
            assert r.status == 200 and (await r.json())["site"] == "works-1"

        # opening /?token= once sets the cookie and sends the browser to the clean address
        async with http.get(server.url + f"?token={TOKEN}", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.headers["Set-Cookie"]
            assert_security_headers(r)
        assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert TOKEN not in cookie  # a digest of the token, not the token
        async with http.get(server.url) as r:
            assert r.status == 200 and '<script src="/page.js">' in await r.text()
        async with http.get(server.url + "events") as r:
            assert r.status == 200 and r.headers["Content-Type"] == "text/event-stream"
            assert_security_headers(r)
            assert await r.content.readline() == b"retry: 3000\n"
        assert server.refused_requests == 8


async def test_every_response_carries_the_security_headers(gw: FakeGateway) -> None:
    async with StatusServer(gw, "127.0.0.1:0", history(gw)) as server, aiohttp.ClientSession() as http:
        server.hub.publish("snapshot", {"n": 1})
        for path in ("", "page.js", "api/status", "metrics", "healthz", "events", "no-such-page"):
            async with http.get(server.url + path) as r:
                assert r.status == (404 if path == "no-such-page" else 200), path
                assert_security_headers(r)
                csp = r.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in csp and "script-src" not in csp  # scripts: 'self' only


async def test_event_streams_are_capped_and_the_next_one_gets_503(gw: FakeGateway) -> None:
    access = HttpConfig(bind="127.0.0.1:0", max_event_clients=2)
    async with (
        StatusServer(gw, "127.0.0.1:0", history(gw), access=access) as server,
        aiohttp.ClientSession() as http,
    ):
        first = await http.get(server.url + "events")
        second = await http.get(server.url + "events")
        assert (first.status, second.status) == (200, 200)
        assert await first.content.readline() == b"retry: 3000\n"
        async with http.get(server.url + "events") as third:
            assert third.status == 503 and third.headers["Retry-After"] == "30"
            assert "max_event_clients" in await third.text()
        assert server.hub.subscribers == 2 and server.hub.refused == 1
        async with http.get(server.url + "api/status") as r:  # the page's other routes still answer
            assert r.status == 200
        first.close()
        for _ in range(100):  # the server notices the closed stream at its next write or read
            if server.hub.subscribers < 2:
                break
            server.hub.publish("snapshot", {"n": 1})
            await asyncio.sleep(0.02)
        async with http.get(server.url + "events") as again:
            assert again.status == 200
        second.close()


async def test_https_with_the_configured_certificate(gw: FakeGateway, tmp_path: Path, token_file: Path) -> None:
    pki = make_pki(tmp_path)
    access = HttpConfig(bind="127.0.0.1:0", cert_file=pki / "server.crt", key_file=pki / "server.key", token_file=token_file)
    client_ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        StatusServer(gw, "127.0.0.1:0", history(gw), access=access) as server,
        aiohttp.ClientSession(cookie_jar=jar) as http,
    ):
        assert server.url.startswith("https://127.0.0.1:")
        async with http.get(server.url + f"?token={TOKEN}", ssl=client_ctx, allow_redirects=False) as r:
            assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]
        async with http.get(server.url + "api/status", ssl=client_ctx) as r:
            assert r.status == 200 and (await r.json())["site"] == "works-1"
        with pytest.raises(aiohttp.ClientError):  # plain HTTP on the HTTPS port gets no page
            async with http.get(server.url.replace("https:", "http:") + "healthz") as r:
                await r.read()
        with pytest.raises(aiohttp.ClientConnectorCertificateError):  # a client without the CA refuses it
            async with http.get(server.url + "healthz") as r:
                pass


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"token_file": "missing.token"}, r"http\.token_file: cannot read .*missing\.token"),
        ({"token_file": "empty.token"}, r"empty\.token is empty"),
        ({"cert_file": "bad.pem", "key_file": "bad.pem"}, r"cannot load http\.cert_file .*bad\.pem"),
    ],
)
async def test_unusable_token_or_certificate_files_stop_the_start(
    gw: FakeGateway, tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    (tmp_path / "empty.token").write_text("\n")
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    access = HttpConfig(bind="127.0.0.1:0", **{k: tmp_path / v for k, v in files.items()})
    with pytest.raises(ConfigError, match=expected):
        async with StatusServer(gw, "127.0.0.1:0", history(gw), access=access):
            pass


SITE = """# site-file-marker-4e1d: this text must never be served
[site]
name = "works-1"
timezone = "Asia/Shanghai"

[influx]
enabled = true
url = "http://127.0.0.1:9"
token = "influx-secret-9c2f"

[[mqtt.brokers]]
name = "plant"
username = "gw"
password = "mqtt-secret-77ab"

[alerts]
enabled = true

[alerts.mqtt]
username = "alerts"
password = "alerts-secret-1d3e"

[http]
bind = "127.0.0.1:0"
token_file = "{token_file}"
"""


async def collect(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> AsyncIterator[tuple[str, str]]:
    for path in (
        "",
        "page.js",
        "api/status",
        "metrics",
        "healthz",
        "site.toml",
        "config",
        "settings",
        "%2e%2e/site.toml",
        "api/config",
        "api/settings",
        ".env",
    ):
        async with http.get(url + path, headers=headers) as r:
            yield path, f"{r.status} {dict(r.headers)} {await r.text()}"
    async with http.get(url + "events", headers=headers) as r:
        yield "events", (await r.content.readline()).decode() + (await r.content.readuntil(b"\n\n")).decode()


async def test_no_response_shows_a_secret_or_the_site_file(gw: FakeGateway, tmp_path: Path, token_file: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(token_file=token_file))
    settings = load_settings(site)
    gw.settings = settings  # type: ignore[assignment]
    gw.health.get("influx").failed("influx http://127.0.0.1:9: unreachable: ClientConnectorError; check influx.url")
    secrets = ["influx-secret-9c2f", "mqtt-secret-77ab", "alerts-secret-1d3e", TOKEN, "site-file-marker-4e1d", str(site)]
    async with StatusServer(gw, "127.0.0.1:0", history(gw)) as server, aiohttp.ClientSession() as http:
        server.hub.publish("snapshot", server.snapshot())
        seen: dict[str, Any] = {}
        async for path, text in collect(http, server.url, {"Authorization": f"Bearer {TOKEN}"}):
            seen[path] = text
            for secret in secrets:
                assert secret not in text, (path, secret)
    assert seen["api/status"].startswith("200") and "works-1" in seen["api/status"]
    assert seen["events"].startswith("retry: 3000") and "works-1" in seen["events"]
    assert all(seen[p].startswith("404") for p in ("site.toml", "config", "%2e%2e/site.toml", "api/config", ".env"))
