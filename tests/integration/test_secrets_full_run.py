"""No secret in anything a real gateway run writes, errors included.

tests/integration/test_influx_peer.py checks the InfluxDB sink on its own (its log records, a
proxy echoing the token). This runs the whole `emgate run` as a subprocess with debug logging
against a real Mosquitto with password auth and a real influxd with auth enabled, once with the
secrets in environment variables (text log) and once in files (JSON log). Each run starts with
both peers refusing the credentials (the broker knows another password, influxd another
password for the token's user), so the error paths run first; then the peers accept them, the
ledger's backlog reaches InfluxDB and the broker sees the subscription. Everything the run wrote
is then scanned for the secrets: stdout, stderr, every file under its working directory (ledger
and WAL included, so quarantine messages too), and the status page (/, /api/status, /metrics)
scraped during the refusals and after. A third run gives InfluxDB's user and password in
`influx.url` (http://user:password@host): they must be used, and shown nowhere either.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.ledger.store import Ledger
from tests.factories import minute_results, results_of
from tests.services.binaries import require_binary
from tests.services.influxd import InfluxService
from tests.services.mosquitto import MosquittoService

pytestmark = pytest.mark.integration

USER = "emgate"
TOPIC = "plant/secret-scan/coke_tph"
BACKLOG_MINUTES = 30


class AuthInfluxService(InfluxService):
    """influxd with HTTP auth on: an admin for the test, and user `emgate` for the gateway."""

    admin = ("admin", "admin-" + secrets.token_hex(8))

    def __init__(self) -> None:
        self._authed = False
        super().__init__(flux=False)

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "INFLUXDB_HTTP_AUTH_ENABLED": "true"}

    def _after_ready(self) -> None:
        if not self._authed:  # with no user yet, influxd accepts only the first admin's creation
            self.influxql(f"CREATE USER {self.admin[0]} WITH PASSWORD '{self.admin[1]}' WITH ALL PRIVILEGES")
            self._authed = True
        super()._after_ready()  # the database

    def _request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        headers = dict(headers or {})
        if self._authed:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.admin).encode()).decode()
        return super()._request(method, path, body=body, headers=headers)

    def set_user_password(self, password: str) -> None:
        users = {row[0] for row in self.influxql("SHOW USERS")["results"][0]["series"][0]["values"]}
        if USER not in users:
            self.influxql(f"CREATE USER {USER} WITH PASSWORD '{password}'")
            self.influxql(f'GRANT ALL ON "{self.database}" TO {USER}')
        else:
            self.influxql(f"SET PASSWORD FOR {USER} = '{password}'")

    def points(self, site: str) -> int:
        series = self.influxql(f"SELECT count(co2_kg) FROM emissions WHERE site = '{site}'")["results"][0].get("series")
        return int(series[0]["values"][0][1]) if series else 0


@pytest.fixture
def influx_auth() -> Iterator[AuthInfluxService]:
    with AuthInfluxService() as server:
        yield server


def broker_passwords(path: Path, password: str) -> None:
    path.unlink(missing_ok=True)
    subprocess.run([require_binary("mosquitto_passwd"), "-c", "-b", str(path), USER, password], check=True)
    path.chmod(0o600)


def backlog(ledger: Path, site: str) -> None:
    """Minutes the ledger holds and InfluxDB has not seen: the sink writes them as soon as it starts."""
    start = (time.time() // 60 - BACKLOG_MINUTES - 5) * 60
    lg = Ledger(ledger)
    lg.append(results_of(
        minute_results(
            BACKLOG_MINUTES, start=start, site=site, process="blast_furnace", stream="coke", co2_kg=1426.5, ef_kg_per_unit=2853.0
        )
    ))
    lg.close()


def site_toml(site: str, influx: InfluxService, extra: str = "", url: str | None = None) -> str:
    return f"""
[site]
name = "{site}"

[retry]
base_s = 0.2
cap_s = 1.0

[ledger]
path = "var/ledger.sqlite"

[influx]
enabled = true
url = "{url or influx.url}"
org = "{influx.org}"
bucket = "{influx.bucket}"
timeout_s = 5
{extra}
[signals."bf.coke_tph"]
unit = "t/h"

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "bf.coke_tph"
method = "fuel_combustion"
factor = "cn.coke"
"""


def broker_table(broker: MosquittoService) -> dict[str, object]:
    return {
        "name": "plant",
        "host": broker.host,
        "port": broker.port,
        "username": USER,
        "subscriptions": [{"topic": TOPIC, "format": "number", "signal": "bf.coke_tph"}],
    }


def _backlog_rows(status: str) -> int | None:
    try:
        return int(json.loads(status)["influx"]["backlog_rows"])
    except (ValueError, KeyError, TypeError):
        return None


def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode(errors="replace")
    except OSError as exc:
        return f"<{url}: {exc}>"


def wait(what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], err: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}; gateway stderr:\n{err.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)


def run_gateway(
    run_dir: Path,
    env: dict[str, str],
    log_format: str,
    *,
    influx: AuthInfluxService,
    broker: MosquittoService,
    fix_peers: Callable[[], None],
    site: str,
) -> dict[str, str]:
    """Run `emgate run` through a refused phase and an accepted one; returns what it exposed:
    stdout, stderr, and the status page's /, /api/status and /metrics while refused and after."""
    out, err = run_dir.parent / f"{run_dir.name}.stdout", run_dir.parent / f"{run_dir.name}.stderr"
    cmd = [sys.executable, "-m", "gateway", "--log-level", "DEBUG", "--log-format", log_format]
    cmd += ["run", "--config", "site.toml", "--http", "127.0.0.1:0"]
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=fo, stderr=fe)
    exposed: dict[str, str] = {}
    pages = {"page": "", "status": "api/status", "metrics": "metrics"}
    try:
        wait("the status page", lambda: "status page http" in out.read_text(), proc, err)
        page = re.search(r"status page (http://\S+/)", out.read_text()).group(1)  # type: ignore[union-attr]
        # both peers refuse: InfluxDB answers 401 to the backlog, the broker refuses the CONNECT
        wait("InfluxDB's 401", lambda: "HTTP 401" in err.read_text(), proc, err)
        wait("the broker's refusal", lambda: re.search(r"mqtt.*connect failed", err.read_text()) is not None, proc, err)
        exposed |= {f"refused {k}": fetch(page + p) for k, p in pages.items()}
        assert influx.points(site) == 0
        fix_peers()
        wait("the backlog in InfluxDB", lambda: influx.points(site) >= BACKLOG_MINUTES, proc, err)
        # the page counts the backlog after each acknowledged batch; minutes keep closing meanwhile
        wait("the page's backlog at 0", lambda: _backlog_rows(fetch(page + pages["status"])) == 0, proc, err)
        broker.wait_for_subscription(TOPIC, timeout_s=30)
        exposed |= {f"accepted {k}": fetch(page + p) for k, p in pages.items()}
    finally:
        proc.send_signal(signal.SIGINT)  # a person's Ctrl-C: the gateway flushes and exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    exposed |= {"stdout": out.read_text(errors="replace"), "stderr": err.read_text(errors="replace")}
    return exposed


def written_files(run_dir: Path, secret_files: set[Path]) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(run_dir.rglob("*")) if p.is_file() and p not in secret_files]


def assert_no_secret(texts: dict[str, str], files: list[tuple[Path, bytes]], secret_values: list[str]) -> None:
    """No secret, as is, base64 (HTTP Basic) or JSON-escaped, in any text or file."""
    for value in secret_values:
        forms = {value, base64.b64encode(value.encode()).decode(), json.dumps(value)[1:-1]}
        for name, text in texts.items():
            for form in forms:
                assert form not in text, f"secret in {name}: ...{text[max(0, text.find(form) - 200) :][:400]}"
        for path, data in files:
            for form in forms:
                assert form.encode() not in data, f"secret found in {path}"


def test_no_secret_in_a_full_run_with_refused_credentials(
    influx_auth: AuthInfluxService, mosquitto_factory: Callable[..., MosquittoService], tmp_path: Path
) -> None:
    mqtt_password = "mq-" + secrets.token_hex(12)
    influx_password = "ix-" + secrets.token_hex(12)
    token = f"{USER}:{influx_password}"
    pw_file = tmp_path / "mosquitto.passwd"
    broker_passwords(pw_file, "not-the-gateways-" + secrets.token_hex(4))
    broker = mosquitto_factory(allow_anonymous=False, password_file=pw_file)
    influx_auth.set_user_password("not-the-gateways-" + secrets.token_hex(4))

    def fix_peers() -> None:
        influx_auth.set_user_password(influx_password)
        broker_passwords(pw_file, mqtt_password)
        broker.restart()

    def refuse_again() -> None:
        influx_auth.set_user_password("rotated-" + secrets.token_hex(4))
        broker_passwords(pw_file, "rotated-" + secrets.token_hex(4))
        broker.restart()

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EMGATE__")}
    exposed: dict[str, str] = {}
    files: list[tuple[Path, bytes]] = []

    # 1. secrets in environment variables, text log
    run_a = tmp_path / "env-run"
    run_a.mkdir()
    backlog(run_a / "var" / "ledger.sqlite", "scan-env")
    (run_a / "site.toml").write_text(site_toml("scan-env", influx_auth))
    env = {
        **base_env,
        "EMGATE__INFLUX__TOKEN": token,
        "EMGATE__MQTT__BROKERS": json.dumps([{**broker_table(broker), "password": mqtt_password}]),
    }
    got = run_gateway(run_a, env, "text", influx=influx_auth, broker=broker, fix_peers=fix_peers, site="scan-env")
    exposed |= {f"env run {k}": v for k, v in got.items()}
    files += written_files(run_a, set())

    # 2. secrets in files, JSON log
    refuse_again()
    run_b = tmp_path / "file-run"
    run_b.mkdir()
    backlog(run_b / "var" / "ledger.sqlite", "scan-file")
    token_file, password_file = run_b / "influx.token", run_b / "mqtt.password"
    token_file.write_text(token + "\n")
    password_file.write_text(mqtt_password + "\n")
    token_file.chmod(0o600)
    password_file.chmod(0o600)
    table = broker_table(broker)
    subs = table.pop("subscriptions")
    broker_toml = "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    sub_toml = "".join(f"{k} = {json.dumps(v)}\n" for k, v in subs[0].items())  # type: ignore[index]
    extra = 'token_file = "influx.token"\n'
    (run_b / "site.toml").write_text(
        site_toml("scan-file", influx_auth, extra)
        + f'\n[[mqtt.brokers]]\n{broker_toml}password_file = "mqtt.password"\n\n[[mqtt.brokers.subscriptions]]\n{sub_toml}'
    )
    got = run_gateway(run_b, base_env, "json", influx=influx_auth, broker=broker, fix_peers=fix_peers, site="scan-file")
    exposed |= {f"file run {k}": v for k, v in got.items()}
    files += written_files(run_b, {token_file, password_file})

    # the runs went through both phases, and the scan looks at what they wrote then
    for run in ("env run", "file run"):
        assert "HTTP 401" in exposed[f"{run} stderr"]
        assert re.search(r"mqtt.*connect failed.*Not authorized", exposed[f"{run} stderr"])
        assert "recovered" in exposed[f"{run} stderr"]
        refused = json.loads(exposed[f"{run} refused status"])
        assert refused["influx"]["batches_failed"] >= 1
        assert any(d["name"] == "mqtt[plant]" and "Not authorized" in d["last_error"] for d in refused["devices"])
        assert "emgate_influx_batches_failed" in exposed[f"{run} refused metrics"]
        assert json.loads(exposed[f"{run} accepted status"])["influx"]["backlog_rows"] == 0
    assert all(json.loads(line)["level"] for line in exposed["file run stderr"].splitlines())
    assert "DEBUG" in exposed["env run stderr"]
    assert {p.name for p, _ in files} >= {"ledger.sqlite", "site.toml"}
    assert_no_secret(exposed, files, [mqtt_password, influx_password, token])
    # and the scan finds a secret where one is
    with pytest.raises(AssertionError, match="secret in"):
        assert_no_secret({"control": f"password={mqtt_password}"}, [], [mqtt_password])
    with pytest.raises(AssertionError, match=r"influx\.token"):
        assert_no_secret({}, [(token_file, token_file.read_bytes())], [token])


def test_no_secret_from_url_credentials_in_a_full_run(
    influx_auth: AuthInfluxService, mosquitto_factory: Callable[..., MosquittoService], tmp_path: Path
) -> None:
    """Regression (hardening finding 5): the URL, password included, was logged at INFO and ERROR."""
    mqtt_password = "mq-" + secrets.token_hex(12)
    influx_password = "url-" + secrets.token_hex(12)
    pw_file = tmp_path / "mosquitto.passwd"
    broker_passwords(pw_file, "not-the-gateways-" + secrets.token_hex(4))
    broker = mosquitto_factory(allow_anonymous=False, password_file=pw_file)
    influx_auth.set_user_password("not-the-gateways-" + secrets.token_hex(4))

    def fix_peers() -> None:
        influx_auth.set_user_password(influx_password)
        broker_passwords(pw_file, mqtt_password)
        broker.restart()

    run_dir = tmp_path / "url-run"
    run_dir.mkdir()
    backlog(run_dir / "var" / "ledger.sqlite", "scan-url")
    url = influx_auth.url.replace("http://", f"http://{USER}:{influx_password}@")
    (run_dir / "site.toml").write_text(site_toml("scan-url", influx_auth, url=url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMGATE__")}
    env["EMGATE__MQTT__BROKERS"] = json.dumps([{**broker_table(broker), "password": mqtt_password}])
    # the backlog reaching an influxd with auth on is the proof that the URL's credentials are used
    exposed = run_gateway(run_dir, env, "text", influx=influx_auth, broker=broker, fix_peers=fix_peers, site="scan-url")
    assert "HTTP 401" in exposed["stderr"] and "recovered" in exposed["stderr"]
    assert f"InfluxDB {influx_auth.url}" in exposed["stderr"]  # the INFO start line names the server, without them
    assert json.loads(exposed["refused status"])["influx"]["batches_failed"] >= 1
    assert json.loads(exposed["accepted status"])["influx"]["backlog_rows"] == 0
    files = written_files(run_dir, {run_dir / "site.toml"})  # the site file holds them by choice
    assert_no_secret(exposed, files, [influx_password, f"{USER}:{influx_password}", mqtt_password])
