"""A column-mapped CSV read column-wise with numpy: a historian export of many signals.

A day of one-minute values for 100,000 signals is 144 million cells (1 GB). Read by the csv
module and converted by numpy's string cast, a cell costs about 0.5 us in Python objects and
conversions (70 s a day, and 18 GB of strings); here the file is read as bytes, cut into fields
by numpy, and every plain decimal cell (an optional sign, digits, an optional point and digits,
at most 2**53 as an integer) is computed as integer / 10**decimals: both are exact doubles, so
the one division rounds exactly as float() rounds the decimal (the same value, bit for bit). A
cell that is not plain (an exponent, inf, nan, spaces, underscores) goes through numpy's string
cast, as before; an empty one is NaN.

`read_table` answers only for a file whose reading cannot differ from the csv module's: text in
an encoding that writes ASCII as ASCII, no quote character and no NUL anywhere, no blank line,
line ends \\n or \\r\\n, every data row as wide as the header. For anything else, and for a cell
that is not a number, it answers None: the row-by-row reader then reads the file as it always
has and names the line of a bad cell.
"""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

#: Encodings in which every ASCII character is its own single byte, and no other byte is ASCII.
ASCII_SAFE_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "ascii", "latin-1", "iso8859-1", "cp1252", "gbk", "gb18030"})
#: Bytes of data cut into fields and converted at a time (whole rows, at least one): the
#: temporaries of about 10 x this stay in the CPU's cache (8 MB pieces took twice as long).
CHUNK_BYTES = 1 << 20
#: The widest plain cell computed here; a wider one goes through numpy's string cast.
MAX_PLAIN_BYTES = 17
_EXACT_MANTISSA = 2**53
_POW10 = 10.0 ** np.arange(MAX_PLAIN_BYTES + 1)
_DIGIT0, _POINT, _MINUS, _PLUS = ord("0"), ord("."), ord("-"), ord("+")


def read_table(
    path: Path, encoding: str, delimiter: str, header: list[str], time_column: int, value_columns: list[int]
) -> tuple[list[str], NDArray[np.float64], list[int]] | None:
    """(the timestamp cells, the value columns as floats (rows x columns), each row's line), or
    None when the file is not one this reader reads exactly as the csv module does (see the module)."""
    if codecs.lookup(encoding).name not in ASCII_SAFE_ENCODINGS or not _plain_delimiter(delimiter):
        return None
    raw = path.read_bytes()
    # The file's bytes are read once and cut in place (memoryview pieces): a copy of 1 GB costs
    # seconds of page faults. Only a file with \r\n line ends, or a last line without one, is copied.
    start = len(codecs.BOM_UTF8) if codecs.lookup(encoding).name == "utf-8-sig" and raw.startswith(codecs.BOM_UTF8) else 0
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n")
        if b"\r" in raw:  # a lone \r ends a row for the csv module
            return None
    if not raw.endswith(b"\n") or raw.endswith(b"\n\n"):
        raw = raw.rstrip(b"\n") + b"\n"  # blank lines at the end: skipped by the csv module too
    head_end = raw.find(b"\n", start)
    if head_end <= start or head_end + 1 == len(raw) or b'"' in raw or b"\x00" in raw or b"\n\n" in raw:
        return None
    try:
        if raw[start:head_end].decode(encoding).split(delimiter) != header:
            return None
    except UnicodeDecodeError:
        return None
    body_start = head_end + 1
    if not raw.isascii() and int(np.frombuffer(raw, dtype=np.uint8, offset=body_start).max()) >= 0x80:
        return None  # the header may be in any script; the data rows must be ASCII
    sep = delimiter.encode("ascii")
    width = len(header)
    cols = np.asarray(value_columns, dtype=np.int64)
    table = np.empty((raw.count(b"\n", body_start), len(cols)))
    stamps: list[str] = []
    data = memoryview(raw)
    lo = body_start
    while lo < len(raw):
        hi = raw.find(b"\n", min(lo + CHUNK_BYTES, len(raw)) - 1) + 1  # whole rows, at least one
        chunk = data[lo:hi]
        cut = _cut(chunk, sep, width)
        if cut is None:
            return None
        starts, lengths = cut
        row = len(stamps)
        stamps.extend(
            bytes(chunk[a : a + n]).decode("ascii")
            for a, n in zip(starts[:, time_column].tolist(), lengths[:, time_column].tolist(), strict=True)
        )
        values = cells_to_float(chunk, starts[:, cols], lengths[:, cols])
        if values is None:
            return None
        table[row : len(stamps)] = values
        lo = hi
    return stamps, table, list(range(2, 2 + len(stamps)))


def _plain_delimiter(delimiter: str) -> bool:
    """A one-character ASCII delimiter that is not the quote character, a line end or NUL."""
    return len(delimiter) == 1 and delimiter.isascii() and delimiter not in '"\r\n\x00'


def _cut(chunk: memoryview, sep: bytes, width: int) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """Start and length of every field of `chunk` (rows x width), or None when a row is not `width` wide."""
    u = np.frombuffer(chunk, dtype=np.uint8)
    ends = np.flatnonzero((u == sep[0]) | (u == 10))
    if len(ends) % width:
        return None
    if len(ends) and int(np.diff(ends, prepend=-1).max()) - 1 >= csv.field_size_limit():
        return None  # the csv module refuses a field this long: let it say so
    row_ends = ends[width - 1 :: width]
    if not (np.count_nonzero(u[ends] == 10) == len(row_ends) and np.all(u[row_ends] == 10)):
        return None
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    return starts.reshape(-1, width), (ends - starts).reshape(-1, width)


def cells_to_float(buf: bytes | memoryview, starts: NDArray[np.int64], lengths: NDArray[np.int64]) -> NDArray[np.float64] | None:
    """The cells buf[start:start + length] as floats, as float(cell) gives them (an empty cell NaN);
    None when a cell is not a number."""
    u = np.frombuffer(buf, dtype=np.uint8)
    out = np.empty(starts.shape)
    flat_out = out.reshape(-1)
    s, n = starts.reshape(-1), lengths.reshape(-1)
    width = int(min(n.max(initial=0), MAX_PLAIN_BYTES))
    padded = np.concatenate((u, np.zeros(width, dtype=np.uint8)))
    short = np.minimum(n, 255).astype(np.uint8)  # the byte tests below are on uint8: 8 times less memory to pass
    mantissa = np.zeros(len(s), dtype=np.int64)
    decimals = np.zeros(len(s), dtype=np.int8)
    plain = (n > 0) & (n <= MAX_PLAIN_BYTES)
    has_digit = np.zeros(len(s), dtype=bool)
    after_point = np.zeros(len(s), dtype=bool)
    negative = np.zeros(len(s), dtype=bool)
    for j in range(width):
        inside = short > j
        b = np.take(padded[j:], s)  # byte j of every cell (or beyond its end)
        d = b - np.uint8(_DIGIT0)  # wraps for bytes below "0": not a digit either
        is_digit = d < 10
        is_digit &= inside
        is_point = b == _POINT
        is_point &= inside
        ok = is_digit | is_point | ~inside
        if j == 0:
            negative = b == _MINUS
            ok |= negative | (b == _PLUS)
        plain &= ok
        plain &= ~(is_point & after_point)  # a second point
        np.multiply(mantissa, 10, out=mantissa, where=is_digit)
        np.add(mantissa, d, out=mantissa, where=is_digit)
        has_digit |= is_digit
        decimals += is_digit & after_point
        after_point |= is_point
    plain &= has_digit & (mantissa <= _EXACT_MANTISSA)
    value = mantissa / _POW10[decimals]
    np.negative(value, out=value, where=negative)
    flat_out[:] = value
    flat_out[n == 0] = np.nan
    other = np.flatnonzero(~plain & (n > 0))
    if len(other):
        # as the row-by-row reader converts its cells (inputs._numbers), the same strip and cast
        raw = np.array(
            [bytes(buf[a : a + k]).decode("ascii") for a, k in zip(s[other].tolist(), n[other].tolist(), strict=True)], dtype=str
        )
        empty = np.char.str_len(np.char.strip(raw)) == 0
        try:
            flat_out[other] = np.where(empty, "nan", raw).astype(np.float64)
        except ValueError:
            return None
    return out
