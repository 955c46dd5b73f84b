"""A ledger belongs to one site (hardening finding 2): `meta` records it, every command with a
site file refuses a ledger of another site (exit 2, naming both sites, the ledger and the site
file), and a ledger written before the site was recorded is read by its rows' site."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.commands.demo import DEMO_CONFIG
from gateway.ledger.site import LedgerSiteError, SiteRecord, read_site_record
from gateway.ledger.store import Ledger
from gateway.pipeline import Gateway
from tests.factories import T0, results_of
from tests.factories import minute_result as result

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
UCI = EXAMPLES / "uci-steel.toml"  # site "uci-steel"
LF = "ladle-furnace"  # the site of config/examples/ladle-furnace.toml


def lf_ledger(path: Path, minutes: int = 3) -> Path:
    """A ladle furnace's ledger as a replay of ladle-furnace.toml writes it."""
    lg = Ledger(path, site=LF)
    lg.append(results_of([dataclasses.replace(result(i), site=LF) for i in range(minutes)]))
    lg.close()
    return path


def old_ledger(path: Path, *sites: str) -> Path:
    """A ledger as an earlier version wrote it: rows, and no site in `meta`."""
    lg = Ledger(path)
    lg.append(results_of([dataclasses.replace(result(i), site=s) for i, s in enumerate(sites)]))
    lg.close()
    return path


def test_a_new_ledger_records_its_site(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path, site=LF).close()  # recorded on opening, before any row
    assert read_site_record(path) == SiteRecord((LF,), recorded=True)
    lf_ledger(path)
    assert read_site_record(path) == SiteRecord((LF,), recorded=True)
    with pytest.raises(LedgerSiteError) as exc:
        Ledger(path, site="uci-steel")
    text = str(exc.value)
    assert f"the ledger at {path} belongs to site 'ladle-furnace'" in text and "'uci-steel'" in text
    with pytest.raises(LedgerSiteError):
        Ledger(path, site="uci-steel", readonly=True)
    Ledger(path, readonly=True).close()  # a reader without a site reads any ledger


def test_an_old_ledger_adopts_its_rows_site_at_its_next_write(tmp_path: Path) -> None:
    path = old_ledger(tmp_path / "ledger.sqlite", "works", "works")
    assert read_site_record(path) == SiteRecord(("works",), recorded=False)
    Ledger(path, site="works", readonly=True).close()  # a reader checks, and writes nothing
    assert not read_site_record(path).recorded
    with pytest.raises(LedgerSiteError, match="belongs to site 'works'"):
        Ledger(path, site="other")
    assert read_site_record(path) == SiteRecord(("works",), recorded=False)  # a refusal records nothing
    lg = Ledger(path, site="works")
    assert lg.head_seq == 2  # it still opens, rows and all
    lg.close()
    assert read_site_record(path) == SiteRecord(("works",), recorded=True)


def test_an_old_ledger_of_several_sites_is_refused_but_still_read(tmp_path: Path) -> None:
    path = old_ledger(tmp_path / "ledger.sqlite", "north", "south", "north")
    for site in ("north", "south", "east"):
        with pytest.raises(LedgerSiteError) as exc:
            Ledger(path, site=site)
        assert "several sites ('north', 'south')" in exc.value.message(Path("site.toml"))
        assert "this site file (site.toml)" in exc.value.message(Path("site.toml"))
    lg = Ledger(path, readonly=True)
    assert lg.reader.site_record() == SiteRecord(("north", "south"), recorded=False)
    assert len(list(lg.reader.current())) == 3
    lg.close()


def test_an_empty_ledger_of_an_earlier_version_is_claimed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    assert read_site_record(path) == SiteRecord((), recorded=False)
    Ledger(path, site="works").close()
    assert read_site_record(path) == SiteRecord(("works",), recorded=True)


def test_gateway_build_records_its_site(tmp_path: Path) -> None:
    from gateway.commands.demo import demo_settings

    settings = demo_settings(DEMO_CONFIG, 502, tmp_path / "ledger.sqlite")
    gw = Gateway.build(settings)
    gw.close()
    assert read_site_record(tmp_path / "ledger.sqlite") == SiteRecord((settings.site.name,), recorded=True)


# -- the commands -----------------------------------------------------------------------------------
def _site_message(err: str, ledger: Path, site_file: Path, site: str) -> None:
    assert f"the ledger at {ledger} belongs to site 'ladle-furnace'" in err, err
    assert f"this site file ({site_file}) is for site '{site}'" in err, err
    assert "pass that site's ledger" in err, err


def test_export_refuses_another_sites_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = lf_ledger(tmp_path / "lf.sqlite")
    out = tmp_path / "export"
    argv = ["export", "--config", str(UCI), "--ledger", str(ledger), "--month", "2026-11", "--out", str(out)]
    assert main(argv) == 2
    _site_message(capsys.readouterr().err, ledger, UCI, "uci-steel")
    assert not out.exists() or not any(out.iterdir())  # nothing filed under uci-steel


def test_export_refuses_an_old_ledger_of_another_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = old_ledger(tmp_path / "lf.sqlite", LF, LF)
    argv = ["export", "--config", str(UCI), "--ledger", str(ledger), "--month", "2026-11", "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    _site_message(capsys.readouterr().err, ledger, UCI, "uci-steel")


def _never_run(*_args: object, **_kw: object) -> None:
    raise AssertionError("the gateway started on another site's ledger")


def test_run_refuses_another_sites_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = lf_ledger(tmp_path / "lf.sqlite")
    site_file = tmp_path / "uci.toml"
    text = UCI.read_text(encoding="utf-8")
    assert 'path = "var/uci-ledger.sqlite"' in text
    site_file.write_text(text.replace('path = "var/uci-ledger.sqlite"', f'path = "{ledger}"'), encoding="utf-8")
    monkeypatch.setattr(Gateway, "run", _never_run)
    assert main(["run", "--config", str(site_file), "--quiet"]) == 2
    _site_message(capsys.readouterr().err, ledger, site_file, "uci-steel")
    assert Ledger(ledger, readonly=True).head_seq == 3  # not written


def test_demo_refuses_another_sites_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = lf_ledger(tmp_path / "lf.sqlite")
    monkeypatch.setattr(Gateway, "run", _never_run)
    assert main(["demo", "--speed", "60", "--minutes", "1", "--ledger", str(ledger)]) == 2
    _site_message(capsys.readouterr().err, ledger, DEMO_CONFIG, "integrated-works")


def test_restate_refuses_another_sites_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = lf_ledger(tmp_path / "lf.sqlite")
    for dry in ([], ["--dry-run"]):
        argv = ["ledger", "restate", "--config", str(UCI), str(ledger), "--from", str(T0), "--to", str(T0 + 3600)]
        assert main([*argv, "--reason", "lab NCV", *dry]) == 2
        _site_message(capsys.readouterr().err, ledger, UCI, "uci-steel")
    assert Ledger(ledger, readonly=True).head_seq == 3


def test_verify_and_show_print_the_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = lf_ledger(tmp_path / "lf.sqlite")
    assert main(["ledger", "verify", str(ledger)]) == 0
    assert "ok — site 'ladle-furnace', 3 row(s)" in capsys.readouterr().out
    assert main(["ledger", "show", str(ledger)]) == 0
    assert f"{ledger}: site 'ladle-furnace'" in capsys.readouterr().err
    old = old_ledger(tmp_path / "old.sqlite", "north", "south")
    assert main(["ledger", "verify", str(old)]) == 0
    assert "rows of several sites: 'north', 'south'" in capsys.readouterr().out
