from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.settings.load import load_settings

EXAMPLES = Path(__file__).parents[2] / "config" / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_examples_are_valid(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    assert ": ok" in capsys.readouterr().out


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2
    assert "no such file; check the --config path" in capsys.readouterr().err


def test_invalid_toml_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nname = "x"\ntimezone = \n')
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid TOML" in err and "line 3" in err


def test_secrets_never_print(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "s.toml"
    site.write_text('[site]\nname = "x"\n[influx]\nenabled = true\n')
    monkeypatch.setenv("EMGATE__INFLUX__TOKEN", "s3cr3t-token")
    settings = load_settings(site)
    assert settings.influx.token_value() == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(settings) and "s3cr3t-token" not in str(settings.model_dump())


def test_token_file(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file\n")
    site = tmp_path / "s.toml"
    site.write_text(f'[site]\nname = "x"\n[influx]\ntoken_file = "{tmp_path / "tok"}"\n')
    assert load_settings(site).influx.token_value() == "from-file"
