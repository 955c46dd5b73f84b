"""The shipped files (gateway/settings/shipped.py) and `emgate examples`, in the editable install.

The editable install maps the checkout's config/ to the package gateway.config, so the shipped
files are the repository's own; tests/integration/test_wheel.py checks the same from a wheel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.core.errors import ConfigError
from gateway.settings.factors import default_factor_dir
from gateway.settings.shipped import example_site, example_sites, shipped_dir

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_the_shipped_folders_are_the_checkouts_config() -> None:
    assert shipped_dir("examples").resolve() == CONFIG / "examples"
    assert default_factor_dir().resolve() == CONFIG / "factors"
    assert {name: p.resolve() for name, p in example_sites().items()} == {
        p.stem: p for p in sorted((CONFIG / "examples").glob("*.toml"))
    }


@pytest.mark.parametrize("name", ["uci-steel", "uci-steel.toml"])
def test_an_example_is_found_by_its_name(name: str) -> None:
    assert example_site(name).resolve() == CONFIG / "examples" / "uci-steel.toml"


def test_an_unknown_example_names_the_ones_there_are() -> None:
    with pytest.raises(ConfigError, match=r"no example site 'uci'; the examples are demo-plant, integrated-works, ladle-furnace, uci-steel"):
        example_site("uci")


def test_examples_command_lists_names_and_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(name, Path(path).resolve()) for name, path in rows] == [
        (p.stem, p) for p in sorted((CONFIG / "examples").glob("*.toml"))
    ]


def test_examples_command_prints_one_path_or_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples", "demo-plant"]) == 0
    assert Path(capsys.readouterr().out.strip()).resolve() == CONFIG / "examples" / "demo-plant.toml"
    assert main(["examples", "nope"]) == 2
    assert "emgate examples: no example site 'nope'" in capsys.readouterr().err
