"""Golden configuration cases: each tests/cases/config/<name>/ holds site.toml and expected.err.

Every line of expected.err must appear in what `emgate check-config` prints (file names are
compared relative to the case folder), and the command must exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main

CASES = sorted((Path(__file__).parents[1] / "cases" / "config").iterdir())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_config_case(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-config", str(case / "site.toml")])
    err = capsys.readouterr().err.replace(str(case) + "/", "")
    assert code == 2
    for line in (case / "expected.err").read_text().splitlines():
        assert line in err, f"missing {line!r} in:\n{err}"
