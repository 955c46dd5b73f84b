"""Line protocol from packed ledger rows: SQLite's JSON keys and Python's packing agree."""

import math
from pathlib import Path

from gateway.sinks.influx import LineEncoder, pack, to_line
from gateway.sinks.ledger import Ledger
from tests.unit.test_ledger import result


def test_sqlite_packing_matches_python_packing(tmp_path: Path) -> None:
    lg = Ledger(tmp_path / "l.sqlite")
    rows = [
        result(0, process="a b,c=d", stream='s"q\\', flags="rule=last_good;x=1", factor_id="ünï"),
        result(1),
    ]
    lg.append(rows)
    packed, superseded = lg.outbox_rows(0, 10)
    assert not superseded
    enc = LineEncoder("emissions")
    assert enc.lines(packed) == enc.lines([pack(i + 1, r) for i, r in enumerate(rows)])
    line = enc.lines(packed[:1])
    assert line.startswith(
        'emissions,process=a\\ b\\,c\\=d,scope=direct,site=works,stream=s"q\\\\ co2_kg=10.0,'
    )
    assert (
        'flags="rule=last_good;x=1"' in line
        and 'factor_id="ünï"' in line
        and 'method="fuel_combustion"' in line
    )
    assert line.endswith(f" {int(rows[0].minute_start)}")
    lg.close()


def test_non_finite_numbers_are_left_out_not_the_point() -> None:
    line = to_line(result(0, co2_kg=math.inf), "m")
    assert "co2_kg" not in line and "activity=0.5," in line and 'quality="measured"' in line
