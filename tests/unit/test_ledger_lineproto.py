"""Line protocol from the ledger's outbox rows: SQLite's JSON keys and Python's packing agree."""

import math
from pathlib import Path

import pytest

from gateway.codec.lineproto import MinutePointEncoder, minute_line, packed_minute
from gateway.ledger.store import Ledger
from tests.factories import minute_result as result
from tests.factories import results_of


def test_sqlite_packing_matches_python_packing(tmp_path: Path) -> None:
    lg = Ledger(tmp_path / "l.sqlite")
    rows = [
        result(0, process="a b,c=d", stream='s"q\\', flags="rule=last_good;x=1", factor_id="ünï"),
        result(1),
    ]
    lg.append(results_of(rows))
    packed, superseded = lg.outbox.rows(0, 10)
    assert not superseded
    enc = MinutePointEncoder("emissions")
    assert enc.lines(packed) == enc.lines([packed_minute(i + 1, r) for i, r in enumerate(rows)])
    line = enc.lines(packed[:1])
    assert line.startswith('emissions,activity_unit=t,process=a\\ b\\,c\\=d,scope=direct,site=works,stream=s"q\\\\ co2_kg=10.0,')
    assert 'flags="rule=last_good;x=1"' in line and 'quality="measured"' in line
    # provenance stays in the ledger and the export
    assert "factor_id" not in line and "method" not in line and "ef_kg_per_unit" not in line
    assert line.endswith(f" {int(rows[0].minute_start)}")
    lg.close()


def test_non_finite_numbers_are_left_out_not_the_point() -> None:
    line = minute_line(result(0, co2_kg=math.inf), "m")
    assert "co2_kg" not in line and "activity=0.5," in line and 'quality="measured"' in line


def test_empty_flags_are_left_out_except_on_a_correction(tmp_path: Path) -> None:
    lg = Ledger(tmp_path / "l.sqlite")
    lg.append(results_of([result(0, flags="rule=last_good", quality="substituted"), result(1)]))
    lg.correct([(1, result(0, flags="", quality="measured"))], "late samples")
    packed, superseded = lg.outbox.rows(0, 10)
    assert superseded == {1}
    enc = MinutePointEncoder("m")
    flagged, plain, corrected = enc.lines(packed).split("\n")
    assert 'flags="rule=last_good"' in flagged
    assert "flags" not in plain
    assert corrected.endswith(f'quality="measured",flags="" {int(result(0).minute_start)}')
    assert enc.lines(packed[2:]) == enc.lines([packed_minute(3, result(0, flags="", quality="measured"), correction=True)])
    lg.close()


def test_a_correction_must_keep_the_point_key(tmp_path: Path) -> None:
    lg = Ledger(tmp_path / "l.sqlite")
    lg.append(results_of([result(0)]))
    for changed in ({"activity_unit": "GJ"}, {"scope": "indirect"}, {"site": "other"}):
        with pytest.raises(ValueError, match="site/scope/unit"):
            lg.correct([(1, result(0, **changed))], "restated")
    assert lg.head_seq == 1
    lg.close()
