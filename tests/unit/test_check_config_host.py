"""`emgate check-config` refuses what `emgate run` would refuse (issue 21, findings 6, 13, 14 and
15): duplicate broker names and client ids, a bad status-page address, a malformed InfluxDB URL,
missing secret files, an unusable ledger path, invalid MQTT topic filters, registers past
65535, non-finite or zero scales and limits; it warns about secret files others can read; it
reads a file with a byte order mark, and refuses /dev/zero and malformed EMGATE__ variables
with exit 2 and no traceback. Also: the console names the flagged streams."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.settings.site import MqttBrokerConfig
from gateway.sinks.console import ConsoleListener
from tests.factories import minute_result, results_of

BASE = """\
[site]
name = "plant-a"
[ledger]
path = "{ledger}"
[signals.p]
unit = "kW"
[[streams]]
process = "eaf"
stream = "power"
signal = "p"
method = "electricity"
factor = "cn.grid.2023.national_avg"
"""
BASE_LINES = BASE.count("\n")


def check(tmp_path: Path, extra: str, capsys: pytest.CaptureFixture[str], *, ledger: Path | None = None) -> tuple[int, str]:
    site = tmp_path / "site.toml"
    site.write_text(BASE.format(ledger=ledger or tmp_path / "var" / "l.sqlite") + extra, encoding="utf-8")
    code = main(["check-config", str(site)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err + out.out


def test_the_base_file_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = check(tmp_path, "", capsys)
    assert code == 0 and ": ok" in text


# ---- finding 6: client ids and broker names ------------------------------------------------------


def test_duplicate_broker_names_name_both_places(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = '[[mqtt.brokers]]\nname = "b"\n[[mqtt.brokers]]\nname = "b"\nport = 1884\n'
    code, text = check(tmp_path, extra, capsys)
    first, second = BASE_LINES + 1, BASE_LINES + 3
    assert code == 2
    assert f"site.toml:{second + 1}: mqtt.brokers[1].name: broker name 'b' is already the name of mqtt.brokers[0] " in text
    assert f"mqtt.brokers[0] ({tmp_path / 'site.toml'}:{first});" in text


def test_default_client_ids_differ_between_sites() -> None:
    broker = MqttBrokerConfig(name="plant-broker")
    assert broker.client_id_for("plant-a") == "emgate-plant-a-plant-broker"
    assert broker.client_id_for("plant-a") != broker.client_id_for("plant-b")
    assert MqttBrokerConfig(name="b", client_id="mine").client_id_for("plant-a") == "mine"


def test_one_client_id_twice_on_one_broker_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = (
        '[[mqtt.brokers]]\nname = "b"\nclient_id = "gw"\n'
        '[[mqtt.brokers]]\nname = "c"\nclient_id = "gw"\n'
        '[[mqtt.brokers]]\nname = "d"\nclient_id = "gw"\nhost = "10.0.0.9"\n'  # another broker: no clash
        '[alerts]\nenabled = true\n[alerts.mqtt]\nclient_id = "gw"\n'
    )
    code, text = check(tmp_path, extra, capsys)
    assert code == 2
    assert (
        "mqtt.brokers[1].client_id: client id 'gw' on 127.0.0.1:1883 is also the client id of mqtt.brokers[0].client_id" in text
    )
    assert "alerts.mqtt.client_id: the alert publisher's client id 'gw'" in text
    assert "mqtt.brokers[2]" not in text


# ---- finding 15: what run refused ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "expect"),
    [
        ("nohost", "bind 'nohost' is not HOST:PORT"),
        ("127.0.0.1:99999", "is not HOST:PORT"),
        ("::1:8080", "write an IPv6 address in brackets"),
        ("10.255.255.1:8080", "it is not an address of this machine"),
        ("no-such-host.invalid:8080", "does not resolve"),
    ],
)
def test_a_bad_http_bind_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], bind: str, expect: str) -> None:
    code, text = check(tmp_path, f'[http]\nbind = "{bind}"\ninsecure_no_auth = true\n', capsys)
    assert code == 2 and "http.bind" in text and expect in text


def test_a_local_http_bind_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = check(tmp_path, '[http]\nbind = "localhost:0"\n', capsys)
    assert code == 0, text


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("http://ho st:8086", "contains a space"),
        ("http://host:8086/?db=x", "has a query or fragment"),
        ("http://host:8086#top", "has a query or fragment"),
        ("http://host_!:8086", "is not a host name or IP address"),
        ("http://user:pw@[::1:8086", "'http://***@[::1:8086' is not an InfluxDB address"),
    ],
)
def test_a_malformed_influx_url_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, expect: str) -> None:
    code, text = check(tmp_path, f'[influx]\nenabled = true\nurl = "{url}"\n', capsys)
    assert code == 2 and f"site.toml:{BASE_LINES + 3}: influx.url" in text and expect in text
    assert "user:pw" not in text


def test_an_influx_url_with_a_path_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = check(tmp_path, '[influx]\nenabled = true\nurl = "https://db.plant.example:8086/influx"\n', capsys)
    assert code == 0, text


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[influx]\nenabled = true\ntoken_file = "{missing}"\n', "influx.token_file"),
        ('[[mqtt.brokers]]\nname = "b"\nusername = "u"\npassword_file = "{missing}"\n', "mqtt.brokers[0].password_file"),
        ('[[mqtt.brokers]]\nname = "b"\n[mqtt.brokers.tls]\nca_file = "{missing}"\n', "mqtt.brokers[0].tls.ca_file"),
    ],
)
def test_a_missing_secret_or_tls_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, key: str
) -> None:
    missing = tmp_path / "nope.txt"
    code, text = check(tmp_path, extra.format(missing=missing), capsys)
    assert code == 2 and f"{key}: {missing}: no such file" in text


def test_a_ledger_path_that_is_a_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ledger.sqlite").mkdir()
    code, text = check(tmp_path, "", capsys, ledger=tmp_path / "ledger.sqlite")
    assert code == 2 and "site.toml:4: ledger.path:" in text and "is a directory" in text


def test_a_ledger_below_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").write_text("x")
    code, text = check(tmp_path, "", capsys, ledger=tmp_path / "plain" / "var" / "l.sqlite")
    assert code == 2 and f"{tmp_path / 'plain'} is not a directory" in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_ledger_in_a_read_only_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    try:
        code, text = check(tmp_path, "", capsys, ledger=ro / "l.sqlite")
    finally:
        ro.chmod(0o700)
    assert code == 2 and "is not writable by this user" in text


@pytest.mark.parametrize("topic", ["a/#/b", "a/b#", "a/+b/c", "a/\u0000"])
def test_an_invalid_topic_filter_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], topic: str) -> None:
    toml_topic = topic.replace("\x00", "\\u0000")  # TOML's escape for NUL
    extra = (
        f'[[mqtt.brokers]]\nname = "b"\n[[mqtt.brokers.subscriptions]]\ntopic = "{toml_topic}"\nformat = "number"\nsignal = "p"\n'
    )
    code, text = check(tmp_path, extra, capsys)
    assert code == 2 and "mqtt.brokers[0].subscriptions[0].topic: topic filter" in text


@pytest.mark.parametrize("topic", ["#", "a/+/c", "+/+/#", "$share/g/plant/#", "a//b"])
def test_valid_topic_filters_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str], topic: str) -> None:
    extra = f'[[mqtt.brokers]]\nname = "b"\n[[mqtt.brokers.subscriptions]]\ntopic = "{topic}"\nformat = "number"\nsignal = "p"\n'
    code, text = check(tmp_path, extra, capsys)
    assert code == 0, text


@pytest.mark.parametrize(
    ("point", "ok"),
    [
        ('address = 65535\ntype = "FLOAT32"', False),
        ('address = 65533\ntype = "UINT64"', False),
        ('address = 65530\ntype = "STRING"\nlength = 7', False),
        ('address = 65532\ntype = "UINT64"', True),
        ('address = 65535\ntype = "UINT16"', True),
        ('address = 65535\nregister = "coil"\ntype = "BIT"', True),
    ],
)
def test_registers_past_65535_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], point: str, ok: bool) -> None:
    extra = f'[[modbus.devices]]\nname = "d"\n[[modbus.devices.points]]\nsignal = "p"\n{point}\n'
    code, text = check(tmp_path, extra, capsys)
    assert code == (0 if ok else 2), text
    if not ok:
        assert "past the last register 65535" in text


# ---- finding 14: non-finite and zero scales and limits --------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        ("scale", "nan", "scale: nan is not a finite number"),
        ("scale", "inf", "scale: inf is not a finite number"),
        ("scale", "0.0", "scale 0 makes every reading equal to offset"),
        ("offset", "-inf", "offset: -inf is not a finite number"),
        ("min", "nan", "min: nan is not a finite number"),
        ("max", "inf", "max: inf is not a finite number"),
    ],
)
def test_non_finite_or_zero_point_scales_and_limits_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, expect: str
) -> None:
    extra = f'[[modbus.devices]]\nname = "d"\n[[modbus.devices.points]]\nsignal = "p"\naddress = 1\n{key} = {value}\n'
    code, text = check(tmp_path, extra, capsys)
    assert code == 2 and "modbus.devices[0].points[0]" in text and expect in text


@pytest.mark.parametrize(("key", "value"), [("counter_scale", "inf"), ("counter_scale", "nan"), ("interval_s", "inf")])
def test_non_finite_signal_scales_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str) -> None:
    extra = f'[signals.m]\nkind = "{"counter" if key == "counter_scale" else "interval_total"}"\nunit = "kWh"\n{key} = {value}\n'
    code, text = check(tmp_path, extra, capsys)
    assert code == 2 and f"signals.m.{key}" in text


# ---- deliverable 3: secret files others can read ----------------------------------------------------


def test_a_secret_file_others_can_read_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    token.chmod(0o640)
    key = tmp_path / "client.key"
    key.write_text("k")
    key.chmod(0o600)
    cert = tmp_path / "client.crt"
    cert.write_text("c")
    cert.chmod(0o644)
    extra = (
        f'[influx]\nenabled = true\ntoken_file = "{token}"\n'
        f'[[mqtt.brokers]]\nname = "b"\n[mqtt.brokers.tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n'
    )
    code, text = check(tmp_path, extra, capsys)
    assert code == 0 and ": ok" in text
    assert (
        "warning: " in text
        and f"influx.token_file: {token} holds a secret and is readable by its group or others (mode 0640)" in text
    )
    assert f"chmod 600 {token}" in text
    assert str(key) not in text and str(cert) not in text  # the key is 0600; a certificate with its own key is no secret
    assert "t0ken" not in text
    token.chmod(0o600)
    code, text = check(tmp_path, extra, capsys)
    assert code == 0 and "warning" not in text


# ---- finding 15, the rest; finding 13 -------------------------------------------------------------


def test_a_byte_order_mark_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "bom.toml"
    site.write_bytes(b"\xef\xbb\xbf" + BASE.format(ledger=tmp_path / "l.sqlite").encode())
    assert main(["check-config", str(site)]) == 0
    assert ": ok" in capsys.readouterr().out


def test_dev_zero_is_refused_without_reading_it_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "/dev/zero"]) == 2
    err = capsys.readouterr().err
    assert "/dev/zero: longer than 64 MiB, not a site file" in err and "Traceback" not in err


def test_a_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path)]) == 2
    assert "is a directory; give the site's TOML file" in capsys.readouterr().err


def test_a_malformed_section_variable_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMGATE__INFLUX", "{not json")
    code, text = check(tmp_path, "", capsys)
    assert code == 2 and "EMGATE__INFLUX" in text and "environment" in text


def test_a_bad_key_variable_names_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMGATE__INFLUX__BATCH_SIZE", "lots")
    code, text = check(tmp_path, "[influx]\nbatch_size = 5000\n", capsys)
    assert code == 2 and "environment variable EMGATE__INFLUX__BATCH_SIZE: influx.batch_size" in text


def test_the_console_names_the_flagged_streams() -> None:
    out = io.StringIO()
    rows = [
        minute_result(0, "bf", "coke", quality="substituted"),
        minute_result(0, "bof", "gas", quality="partial"),
        minute_result(0, "eaf", "power", quality="measured"),
        minute_result(0, "lf", "arc", quality="missing"),
        minute_result(0, "sinter", "breeze", quality="substituted"),
    ]
    ConsoleListener("UTC", out)(results_of(rows))
    line = out.getvalue()
    assert "(4 stream(s) flagged: bf/coke substituted, bof/gas partial, lf/arc missing, +1 more)" in line
    assert "eaf/power" not in line


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[signals.q]\nunit = "kW"\nmax_gap_s = inf\n', "signals.q.max_gap_s"),
        (
            "[budget]\ncarbon_price_cny_per_t = 80.0\n[[budget.years]]\nyear = 2026\nallowance_t = inf\n",
            "budget.years[0].allowance_t",
        ),
        (
            "[budget]\ncarbon_price_cny_per_t = nan\n[[budget.years]]\nyear = 2026\nallowance_t = 5.0\n",
            "budget.carbon_price_cny_per_t",
        ),
    ],
)
def test_no_number_of_a_site_file_may_be_nan_or_inf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, key: str
) -> None:
    code, text = check(tmp_path, extra, capsys)
    assert code == 2 and f"{key}: " in text and "is not a finite number; give a number (nan and inf are refused)" in text
