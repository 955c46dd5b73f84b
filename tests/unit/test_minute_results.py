"""MinuteResults, the columnar minute results: rows in and out, selection, flags, groups."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.core.model import QUALITY_LABELS, RESULT_FIELDS, MinuteResult, MinuteResults, StreamTable
from gateway.ledger.format import FIELDS

T0 = 1_767_225_600.0


def _row(minute: int, process: str, stream: str, co2_kg: float, **fields: object) -> MinuteResult:
    values: dict[str, object] = {
        "minute_start": T0 + 60.0 * minute,
        "site": "works",
        "process": process,
        "stream": stream,
        "scope": "direct",
        "method": "fuel_combustion",
        "activity": 0.5,
        "activity_unit": "t",
        "co2_kg": co2_kg,
        "factor_id": "cn.coke",
        "ef_kg_per_unit": 3040.0,
        "coverage": 1.0,
        "quality": "measured",
        "flags": "",
    }
    values.update(fields)
    return MinuteResult(**values)  # type: ignore[arg-type]


ROWS = [
    _row(0, "bf", "coke", 1.5),
    _row(0, "sinter", "breeze", 2.0, quality="partial", coverage=0.9),
    _row(0, "bf", "power", 0.25, scope="indirect", method="electricity", activity_unit="MWh", factor_id="cn.grid"),
    _row(1, "bf", "coke", -0.0, flags="rule=last_good", quality="substituted"),
    _row(1, "sinter", "breeze", 3.0, quality="missing", coverage=0.0),
]


def test_rows_come_back_as_they_went_in() -> None:
    results = MinuteResults.from_rows(ROWS)
    assert len(results) == 5
    assert results.rows() == ROWS
    assert len(results.streams) == 3  # bf/coke, sinter/breeze, bf/power
    assert results.streams.entries[2] == ("works", "bf", "power", "indirect", "electricity", "MWh")
    assert [list(r) for r in zip(*results.columns(), strict=True)] == [[getattr(r, f) for f in RESULT_FIELDS] for r in ROWS]
    assert results.text("quality").tolist() == [r.quality for r in ROWS]
    assert results.text("process").tolist() == [r.process for r in ROWS]
    assert results.quality.dtype == np.uint8 and QUALITY_LABELS[results.quality[1]] == "partial"


def test_a_quality_that_is_no_label_is_refused() -> None:
    with pytest.raises(ValueError, match="quality 'fine'"):
        MinuteResults.from_rows([_row(0, "bf", "coke", 1.0, quality="fine")])


def test_columns_of_different_lengths_are_refused() -> None:
    r = MinuteResults.from_rows(ROWS)
    with pytest.raises(ValueError, match="differ in length"):
        MinuteResults(
            r.streams,
            r.stream_ids,
            r.minute_start[:2],
            r.activity,
            r.co2_kg,
            r.factor_id,
            r.ef_kg_per_unit,
            r.coverage,
            r.quality,
            r.flags,
        )


def test_take_and_concat_keep_the_rows() -> None:
    results = MinuteResults.from_rows(ROWS)
    assert results.take(results.minute_start == T0 + 60.0).rows() == ROWS[3:]
    assert results.take(np.array([4, 0])).rows() == [ROWS[4], ROWS[0]]
    assert results.take(slice(1, 3)).streams is results.streams
    again = MinuteResults.concat([results.take(slice(0, 2)), results.take(slice(2, 5))])
    assert again.rows() == ROWS and again.streams == results.streams
    # parts of different stream tables: one merged table
    other = MinuteResults.from_rows([_row(2, "eaf", "electrode", 4.0), ROWS[0]])
    both = MinuteResults.concat([results, other])
    assert both.rows() == [*ROWS, other.rows()[0], ROWS[0]]
    assert len(both.streams) == 4
    assert len(MinuteResults.concat([])) == 0
    assert MinuteResults.empty(results.streams).rows() == []


def test_with_flag_adds_a_flag_once_in_sorted_order() -> None:
    results = MinuteResults.from_rows(ROWS)
    flagged = results.with_flag("gateway_restart", results.minute_start == T0 + 60.0)
    assert flagged.flags.tolist() == ["", "", "", "gateway_restart;rule=last_good", "gateway_restart"]
    assert results.flags.tolist() == [r.flags for r in ROWS]  # a new copy; the original is unchanged
    assert flagged.with_flag("gateway_restart").flags.tolist() == ["gateway_restart"] * 3 + flagged.flags.tolist()[3:]
    assert results.with_flag("x", np.zeros(5, dtype=bool)) is results


def test_codes_number_values_in_order_of_their_first_row() -> None:
    results = MinuteResults.from_rows([ROWS[1], *ROWS])
    processes, code = results.codes("process")
    assert processes == ["sinter", "bf"]
    assert code.tolist() == [0, 1, 0, 1, 1, 0]
    assert results.totals("process") == {"sinter": 2.0 + 2.0 + 3.0, "bf": 1.5 + 0.25 + 0.0}
    assert results.totals("scope") == {"direct": 2.0 + 1.5 + 2.0 + 0.0 + 3.0, "indirect": 0.25}


def test_a_stream_table_compares_by_its_entries() -> None:
    a = StreamTable([("w", "bf", "coke", "direct", "fuel_combustion", "t")])
    b = StreamTable([("w", "bf", "coke", "direct", "fuel_combustion", "t")])
    assert a == b and hash(a) == hash(b) and len(a) == 1
    assert a.column("process").tolist() == ["bf"]
    with pytest.raises(ValueError, match="entry"):
        StreamTable([("w", "bf")])


def test_the_ledger_stores_the_fields_in_the_order_of_a_result() -> None:
    """Rows read back are MinuteResult(*columns) and the append zips columns() as FIELDS."""
    assert RESULT_FIELDS == FIELDS
