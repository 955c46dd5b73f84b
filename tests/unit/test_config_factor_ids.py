"""A misspelt factor id is a configuration error of every command, found when the site file is read.

Regression (hardening finding 3): `factor = "cn.cokee"` in a stream made check-config, run,
replay and demo die with a traceback and exit 1 (FactorTable.get raises UnknownFactorError, a
LookupError, where KeyError was caught), and systemd restarted the gateway every 5 s. Now it
exits 2 with the file, line, key path, the closest known ids and where the library is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.core.errors import ConfigError
from gateway.settings.factors import factor_table_of
from gateway.settings.site import GatewaySettings
from gateway.stages.emissions import EmissionCalculator

SITE = """\
[site]
name = "typo-works"
timezone = "Asia/Shanghai"

[ledger]
path = "{ledger}"

[signals."bf.coke_tph"]
kind = "rate"
unit = "t/h"

[signals."meter.energy_kwh"]
kind = "counter"
unit = "kWh"

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "bf.coke_tph"
method = "fuel_combustion"
factor = "cn.coke"

[[streams]]
process = "utilities"
stream = "purchased_electricity"
signal = "meter.energy_kwh"
method = "electricity"
factor = "{grid}"

[[replay.csv]]
match = "meter*.csv"
timestamp_column = "ts"
timestamp_format = "epoch_s"
columns = {{ "kwh" = "meter.energy_kwh" }}
"""
TYPO = "cn.grid.2023.national_avgg"
EXPECTED = (
    "site.toml:28: streams[1].factor: stream utilities/purchased_electricity: no factor "
    f"'{TYPO}' in the factor library; did you mean 'cn.grid.2023.national_avg'"
)


def write_site(tmp_path: Path, grid: str = TYPO) -> Path:
    site = tmp_path / "site.toml"
    site.write_text(SITE.format(ledger=tmp_path / "ledger.sqlite", grid=grid))
    return site


def assert_reported(err: str, tmp_path: Path) -> None:
    err = err.replace(f"{tmp_path}/", "")
    assert "emgate: configuration error" in err
    assert EXPECTED in err, err
    assert "config/factors/*.toml and [[factors.overrides]]" in err
    assert "Traceback" not in err


def test_check_config_reports_a_misspelt_factor_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(write_site(tmp_path))]) == 2
    assert_reported(capsys.readouterr().err, tmp_path)


def test_check_config_accepts_the_corrected_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(write_site(tmp_path, "cn.grid.2023.national_avg"))]) == 0, capsys.readouterr().err


def test_run_exits_2_before_opening_the_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(write_site(tmp_path)), "--minutes", "1", "--quiet"]) == 2
    assert_reported(capsys.readouterr().err, tmp_path)
    assert not (tmp_path / "ledger.sqlite").exists()


def test_replay_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "meter-1.csv"
    data.write_text("ts,kwh\n" + "".join(f"{1_700_000_000 + 60 * k},{100 + k}\n" for k in range(30)))
    assert main(["replay", "--config", str(write_site(tmp_path)), "--input", str(data), "--out", str(tmp_path / "out")]) == 2
    assert_reported(capsys.readouterr().err, tmp_path)


def test_demo_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--config", str(write_site(tmp_path)), "--minutes", "1", "--ledger", str(tmp_path / "d.sqlite")]) == 2
    assert_reported(capsys.readouterr().err, tmp_path)


def test_ledger_restate_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an empty ledger: before, the id was only looked up for rows of the stream, so this "succeeded"
    args = ["ledger", "restate", "--config", str(write_site(tmp_path)), str(tmp_path / "ledger.sqlite")]
    args += ["--from", "2026-11-10T00:00:00+08:00", "--to", "2026-11-11T00:00:00+08:00", "--reason", "lab", "--dry-run"]
    assert main(args) == 2
    assert_reported(capsys.readouterr().err, tmp_path)


def test_the_service_exits_2_without_a_traceback(tmp_path: Path) -> None:
    """What systemd sees: exit 2 (RestartPreventExitStatus), one message, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", "site.toml", "--quiet"],
        cwd=write_site(tmp_path).parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert_reported(proc.stderr, tmp_path)


def test_a_misspelt_override_target_names_its_line_and_the_closest_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = write_site(tmp_path, "cn.grid.2023.national_avg")
    site.write_text(
        site.read_text()
        + '\n[[factors.overrides]]\nid = "site.coke.lab"\noverrides = "cn.coal"\nsource = "lab"\n'
        + 'year = 2026\nstatus = "confirmed"\nncv_gj_per_unit = 29.1\n'
    )
    assert main(["check-config", str(site)]) == 2
    err = capsys.readouterr().err.replace(f"{tmp_path}/", "")
    assert (
        "site.toml:38: factors.overrides[0].overrides: factor 'site.coke.lab': overrides: 'cn.coal' is not in the table" in err
    ), err
    assert "did you mean 'cn.cog' or 'cn.coke' or 'cn.coking_coal'?" in err and "config/factors/*.toml" in err


def test_emission_stage_built_from_settings_in_code_raises_config_error(tmp_path: Path) -> None:
    """Settings built without a file (tests, benches) still get a ConfigError, not a LookupError."""
    import tomllib

    settings = GatewaySettings(**tomllib.loads(write_site(tmp_path).read_text()))
    with pytest.raises(ConfigError) as caught:
        EmissionCalculator(settings, factor_table_of(settings.factors))
    (problem,) = caught.value.problems
    assert problem.startswith(f"stream utilities/purchased_electricity: no factor '{TYPO}' in the factor library")
    assert "did you mean 'cn.grid.2023.national_avg'" in problem


def test_a_site_factor_with_a_gap_in_its_validity_is_a_config_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A site factor (no `overrides`) valid only for November: minutes outside it had no factor,
    and the gateway raised at every minute close (a restart loop). Now check-config says when."""
    site = write_site(tmp_path, "site.grid.nov")
    site.write_text(
        site.read_text()
        + '\n[[factors.overrides]]\nid = "site.grid.nov"\nkind = "grid"\nunit = "MWh"\nef_tco2_per_unit = 0.55\n'
        + 'source = "supplier statement"\nyear = 2026\nstatus = "confirmed"\n'
        + 'valid_from = "2026-11-01T00:00:00+08:00"\nvalid_to = "2026-12-01T00:00:00+08:00"\n'
    )
    assert main(["check-config", str(site)]) == 2
    err = capsys.readouterr().err.replace(f"{tmp_path}/", "")
    assert (
        "site.toml:28: streams[1].factor: stream utilities/purchased_electricity: factor 'site.grid.nov' has no value "
        "from the beginning to 2026-10-31T16:00:00+00:00, 2026-11-30T16:00:00+00:00 to no end" in err
    ), err


def test_an_override_with_validity_leaves_no_gap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = write_site(tmp_path, "cn.grid.2023.national_avg")
    site.write_text(
        site.read_text()
        + '\n[[factors.overrides]]\nid = "site.grid.nov"\noverrides = "cn.grid.2023.national_avg"\nef_tco2_per_unit = 0.55\n'
        + 'source = "supplier statement"\nyear = 2026\nstatus = "confirmed"\n'
        + 'valid_from = "2026-11-01T00:00:00+08:00"\nvalid_to = "2026-12-01T00:00:00+08:00"\n'
    )
    assert main(["check-config", str(site)]) == 0, capsys.readouterr().err
