"""The column-wise reader of historian exports reads exactly what the row-by-row reader reads,
value for value and bit for bit, or declines and leaves the file to it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.errors import DecodeError
from gateway.replay import inputs
from gateway.replay.inputs import Series, read_inputs
from gateway.replay.wide_csv import cells_to_float, read_table
from gateway.settings.site import CsvInputConfig, GatewaySettings

TOKENS = [
    "12.5", "-12.5", "+7", "0", "-0", "-0.0", ".5", "5.", "007.250", "123456789012345", "9007199254740993",
    "12345678901234567", "0.1000000000000000055511151231257827", "1e5", "1E-3", "-2.5e+2", "inf", "-inf",
    "nan", "NaN", "Infinity", "1_000", " 1.5", "1.5 ", "\t3", "", "  ", "4.9e-324", "1e400", "99999999999999999999",
]  # fmt: skip


def reference(cells: list[str]) -> np.ndarray:
    """What the row-by-row reader makes of cells (inputs._numbers)."""
    return inputs._numbers(Path("x.csv"), [cells], len(cells), [2])[0]


def convert(cells: list[str]) -> np.ndarray | None:
    buf = ",".join(cells).encode("ascii")
    lengths = np.array([len(c) for c in cells], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1])).astype(np.int64)
    return cells_to_float(buf, starts, lengths)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


def test_every_kind_of_cell_converts_as_the_string_cast_does() -> None:
    got = convert(TOKENS)
    assert got is not None
    assert same_bits(got, reference(TOKENS))  # -0.0 and the NaNs included


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.from_regex(r"[+-]?[0-9]{0,12}\.?[0-9]{0,8}", fullmatch=True),
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.integers(-(10**18), 10**18).map(str),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_decimal_cells_match_float_bit_for_bit(cells: list[str]) -> None:
    try:
        want = reference(cells)
    except DecodeError:  # "-", ".", "+." are no numbers: the reader must say so too
        assert convert(cells) is None
        return
    got = convert(cells)
    assert got is not None and same_bits(got, want)


@pytest.mark.parametrize("bad", ["1.2.3", "12a", "-", "0x10", "1,5"[:1] + "x"])
def test_a_cell_that_is_no_number_is_left_to_the_row_reader(bad: str) -> None:
    assert convert(["1.0", bad, "2.0"]) is None


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def both_readers(path: Path, header_names: list[str], encoding: str = "utf-8-sig", delimiter: str = ",") -> tuple:
    with path.open(encoding=encoding, newline="") as fh:
        header = next(row for row in csv.reader(fh, delimiter=delimiter) if row)
    t_i, *v_i = inputs._header_index(path, header, header_names)
    fast = read_table(path, encoding, delimiter, header, t_i, v_i)
    m = CsvInputConfig(
        match="*.csv", columns={n: f"s.{i}" for i, n in enumerate(header_names[1:])}, encoding=encoding, delimiter=delimiter
    )
    slow = inputs._read_cells(path, m, t_i, v_i)
    return fast, slow


ROWS = "2025-03-01T00:00:00+08:00,1.5,,3\n2025-03-01T00:01:00+08:00,-2.25,7,1e3\n2025-03-01T00:02:00+08:00,0, 4 ,nan\n"


@pytest.mark.parametrize(
    "text, encoding",
    [
        ("ts,a,b,c\n" + ROWS, "utf-8-sig"),
        ("\ufeffts,a,b,c\n" + ROWS, "utf-8-sig"),  # a byte order mark
        (("ts,a,b,c\n" + ROWS).replace("\n", "\r\n"), "utf-8-sig"),  # Windows line ends
        ("ts,a,b,c\n" + ROWS.rstrip("\n"), "utf-8-sig"),  # no line end after the last row
        ("ts,a,b,c\n" + ROWS + "\n\n", "utf-8-sig"),  # blank lines at the end
        ("ts,温度 a,b,c\n" + ROWS, "gbk"),  # a header in another script
    ],
)
def test_a_plain_export_is_read_as_the_row_reader_reads_it(tmp_path: Path, text: str, encoding: str) -> None:
    names = ["ts", "c", "a" if "温度" not in text else "温度 a", "b"]  # not in file order; one column unused
    fast, slow = both_readers(write(tmp_path / "x.csv", text, "utf-8" if encoding == "utf-8-sig" else encoding), names, encoding)
    assert fast is not None
    assert fast[0] == slow[0] and fast[2] == slow[2]
    assert same_bits(fast[1], slow[1])


@pytest.mark.parametrize(
    "text",
    [
        'ts,a\n"2025-03-01T00:00:00+08:00",1\n',  # quoted: the csv module's business
        "ts,a\n2025-03-01T00:00:00+08:00,1\n\n2025-03-01T00:01:00+08:00,2\n",  # a blank line inside
        "ts,a\n2025-03-01T00:00:00+08:00\n2025-03-01T00:01:00+08:00,2\n",  # a short row
        "ts,a\n2025-03-01T00:00:00+08:00,1,9\n",  # a long row
        "ts,a\n2025-03-01T00:00:00+08:00,1\r2025-03-01T00:01:00+08:00,2\n",  # a lone carriage return
        "ts,a\n2025-03-01T00:00:00+08:00,１\n",  # a full-width digit
        "ts,a\n2025-03-01T00:00:00+08:00,12a\n",  # no number: the row reader names its line
        "ts,a\n",  # no data rows
    ],
)
def test_anything_else_is_left_to_the_row_reader(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "x.csv", text)
    with path.open(encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh))
    assert read_table(path, "utf-8", ",", header, 0, [1]) is None


def test_a_field_the_csv_module_refuses_is_left_to_it(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "ts,a\n" + "9" * (csv.field_size_limit() + 1) + ",1\n")
    assert read_table(path, "utf-8", ",", ["ts", "a"], 0, [1]) is None


def test_other_encodings_and_delimiters(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "ts;a\n1;2\n", "utf-16")
    assert read_table(path, "utf-16", ";", ["ts", "a"], 0, [1]) is None  # ASCII is not single bytes there
    fast, slow = both_readers(
        write(tmp_path / "y.csv", "ts;a;b\n1;2,5;3\n4;5;6\n".replace("2,5", "2.5")), ["ts", "a", "b"], delimiter=";"
    )
    assert fast is not None and fast[0] == slow[0] and same_bits(fast[1], slow[1])


SITE = {
    "site": {"name": "w", "timezone": "Asia/Shanghai"},
    "signals": {n: {"unit": "t/h", "max_gap_s": 120.0} for n in ("s.a", "s.b", "s.c")},
    "replay": {"csv": [{"match": "h*.csv", "timestamp_column": "Time", "columns": {"A": "s.a", "B": "s.b", "C": "s.c"}}]},
}


def export(path: Path, minutes: int, wild: str | None = None) -> Path:
    rows = [f"2025-03-01T00:{m:02d}:00+08:00,{10 + m / 8},{m % 3 or ''},-{m}.125" for m in range(minutes)]
    if wild is not None:
        rows.insert(
            0 if wild == "first" else len(rows), f"{'2025-01-01' if wild == 'first' else '2025-05-01'}T00:00:00+08:00,1,2,3"
        )
    return write(path, "Time,A,B,C\n" + "\n".join(rows) + "\n")


def test_a_file_reads_to_the_same_series_with_either_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_ = GatewaySettings.model_validate(SITE)
    path = export(tmp_path / "h1.csv", 50)
    fast = read_inputs([path], settings_)
    monkeypatch.setattr(inputs, "read_table", lambda *a: None)
    slow = read_inputs([path], settings_)
    assert fast.keys() == slow.keys() == {"s.a", "s.b", "s.c"}
    for name in fast:
        assert isinstance(fast[name], Series)
        assert same_bits(fast[name].ts, slow[name].ts) and same_bits(fast[name].values, slow[name].values)


@pytest.mark.parametrize("wild, line", [("first", 2), ("last", 52)])
def test_a_wild_row_of_a_wide_file_is_named_by_its_line(tmp_path: Path, wild: str, line: int) -> None:
    path = export(tmp_path / "h2.csv", 50, wild)
    with pytest.raises(DecodeError, match=rf"h2.csv:{line}: timestamp .* days from the rest of the file") as fast:
        read_inputs([path], GatewaySettings.model_validate(SITE))
    assert "h2.csv:" in str(fast.value)


def test_a_bad_cell_is_named_by_the_row_reader(tmp_path: Path) -> None:
    path = write(tmp_path / "h3.csv", "Time,A,B,C\n2025-03-01T00:00:00+08:00,1,2,3\n2025-03-01T00:01:00+08:00,1,x2,3\n")
    with pytest.raises(DecodeError, match=r"h3.csv:3: value 'x2' is not a number"):
        read_inputs([path], GatewaySettings.model_validate(SITE))
