"""The native walk reads the row layout gateway/ledger/format.py defines, through a generated header."""

import importlib.util
from pathlib import Path

from gateway.ledger import audit
from gateway.ledger.format import CANONICAL_NUMBERS, FIELDS, WALK_COLUMNS

REPO = Path(__file__).resolve().parents[2]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_walk_layout", REPO / "scripts" / "gen_walk_layout.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_header_is_generated_from_the_format() -> None:
    text = (REPO / "gateway" / "ledger" / "_walk_layout.h").read_text(encoding="utf-8")
    assert text == _generator().header(), "gateway/ledger/_walk_layout.h is stale: run python scripts/gen_walk_layout.py"


def test_the_header_follows_a_change_of_the_layout(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A reordered layout gives other positions: the C cannot keep stale ones unnoticed."""
    gen = _generator()
    before = gen.header()
    doubles = list(gen.CANONICAL_DOUBLES)
    i, j = doubles.index("activity"), doubles.index("co2_kg")
    doubles[i], doubles[j] = doubles[j], doubles[i]
    monkeypatch.setattr(gen, "CANONICAL_DOUBLES", tuple(doubles))
    monkeypatch.setattr(gen, "WALK_COLUMNS", ("seq", *doubles, *WALK_COLUMNS[1 + len(doubles) :]))
    after = gen.header()
    assert after != before and f"#define D_CO2_KG {i}" in after and f"#define D_ACTIVITY {j}" in after


def test_the_walk_reads_the_format_columns() -> None:
    assert audit._NATIVE_WALK_SQL.startswith(f"SELECT {', '.join(WALK_COLUMNS)} FROM minutes")
    assert set(WALK_COLUMNS) >= {"seq", *FIELDS, "supersedes", "reason", "recorded_at", "digest"}
    assert CANONICAL_NUMBERS.size == 65
