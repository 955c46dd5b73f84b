"""What flows between the stages: sample batches in, minute results out.

Both travel as columns. Samples come as batches (one poll of a device, one MQTT message) rather
than one object per reading: a gateway polling 10,000 points a second cannot afford an object
each. Minute results come as `MinuteResults`, the (stream x minute) arrays the emission stage
computes, laid flat: the ledger, the alerts, the status views and the replay's files read the
columns they need, and rows (`MinuteResult`) are built only where one row is the concept: a
ledger row read back, a line of text, a test's expectation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from analytics.substitution import MinuteQuality


class SampleQuality(IntEnum):
    """Quality of one reading. Only GOOD readings enter the sums; the rest are counted gaps."""

    GOOD = 0
    STALE = 1
    OUT_OF_RANGE = 2
    DECODE_ERROR = 3
    COMM_ERROR = 4
    NO_READING = 5

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class SampleBatch:
    """Readings taken together. `signal_ids` index the signal table built at startup.

    values: float64 engineering units, NaN where there is no usable reading.
    quality: uint8 SampleQuality codes, same length.
    """

    source: str
    signal_ids: NDArray[np.int32]
    ts: NDArray[np.float64]
    values: NDArray[np.float64]
    quality: NDArray[np.uint8]

    def __post_init__(self) -> None:
        n = len(self.signal_ids)
        if not (len(self.ts) == len(self.values) == len(self.quality) == n):
            raise ValueError(
                f"batch from {self.source}: arrays differ in length "
                f"(signal_ids {n}, ts {len(self.ts)}, values {len(self.values)}, quality {len(self.quality)})"
            )


# Not frozen: a frozen dataclass costs ~5 us per construction against ~0.8 us, and rows read back
# from a ledger (show, restate, the export's evidence) come by the hundred thousand. Treat it as
# immutable all the same: derive changed copies with dataclasses.replace.
@dataclass(slots=True)
class MinuteResult:
    """CO2 of one stream of one process over one minute, with what it rests on: one row of
    MinuteResults, for what is about one row (a ledger row read back, a correction).

    minute_start is epoch seconds (UTC) of the minute's first second. co2_kg is signed: a
    carbon-balance output is negative. quality is measured, partial, substituted, missing or
    estimated; flags lists what else happened (substitution rule, counter reset, late samples,
    out-of-range readings), ';'-separated and sorted.
    """

    minute_start: float
    site: str
    process: str
    stream: str
    scope: str
    method: str
    activity: float
    activity_unit: str
    co2_kg: float
    factor_id: str
    ef_kg_per_unit: float
    coverage: float
    quality: str
    flags: str = ""

    def key(self) -> tuple[float, str, str]:
        return (self.minute_start, self.process, self.stream)


#: The fields of a minute result, in the order of MinuteResult (and of the ledger's columns).
RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(MinuteResult))
#: The text every minute of a stream shares (StreamTable's columns).
STREAM_FIELDS = ("site", "process", "stream", "scope", "method", "activity_unit")
#: MinuteResults.quality codes (analytics.substitution.MinuteQuality) -> the label rows carry.
QUALITY_LABELS: tuple[str, ...] = tuple(q.label for q in sorted(MinuteQuality, key=int))
_QUALITY_TEXT = np.array(QUALITY_LABELS, dtype=object)
_QUALITY_CODE = {label: code for code, label in enumerate(QUALITY_LABELS)}


class StreamTable:
    """The streams minute results belong to, with the text each stream's minutes share.

    Entry k is stream k: its site, process, stream name, scope (direct or indirect), method and
    activity unit. `MinuteResults.stream_ids` index it, so a result row carries one small integer
    where a row object carries six strings. The emission stage builds one table per site at
    startup and every frame's results share it.
    """

    __slots__ = ("_columns", "_text")

    def __init__(self, entries: Iterable[Sequence[str]]) -> None:
        """`entries`: one (site, process, stream, scope, method, activity_unit) per stream."""
        rows = [tuple(e) for e in entries]
        if any(len(r) != len(STREAM_FIELDS) for r in rows):
            raise ValueError(f"a stream table entry is {STREAM_FIELDS}")
        self._text: tuple[tuple[str, ...], ...] = tuple(rows)
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in STREAM_FIELDS]
        self._columns = {name: np.array(col, dtype=object) for name, col in zip(STREAM_FIELDS, cols, strict=True)}

    def __len__(self) -> int:
        return len(self._text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamTable) and (other is self or other._text == self._text)

    def __hash__(self) -> int:
        return hash(self._text)

    def __repr__(self) -> str:
        return f"StreamTable({len(self)} streams)"

    @property
    def entries(self) -> tuple[tuple[str, ...], ...]:
        return self._text

    def column(self, name: str) -> NDArray[np.object_]:
        """One text field (a STREAM_FIELDS name) of every stream, as an object array of str."""
        return self._columns[name]


@dataclass(frozen=True, slots=True, eq=False)
class MinuteResults:
    """Minute results as columns: row i is one stream's CO2 over one minute.

    The columns are those of `MinuteResult` (see it for their meaning), stored as arrays:
    minute_start, activity, co2_kg, ef_kg_per_unit and coverage float64; the text a stream's
    minutes share as `stream_ids` (intp) into `streams`; factor_id and flags object arrays of str
    (flags "" when nothing happened); quality uint8 MinuteQuality codes (QUALITY_LABELS).

    The emission stage lists a frame's results stream-major: the first stream's minutes in
    order, then the next stream's. Treat the arrays as read-only; methods return new results.
    """

    streams: StreamTable
    stream_ids: NDArray[np.intp]
    minute_start: NDArray[np.float64]
    activity: NDArray[np.float64]
    co2_kg: NDArray[np.float64]
    factor_id: NDArray[np.object_]
    ef_kg_per_unit: NDArray[np.float64]
    coverage: NDArray[np.float64]
    quality: NDArray[np.uint8]
    flags: NDArray[np.object_]

    def __post_init__(self) -> None:
        n = len(self.stream_ids)
        lengths = {
            name: len(getattr(self, name))
            for name in ("minute_start", "activity", "co2_kg", "factor_id", "ef_kg_per_unit", "coverage", "quality", "flags")
        }
        if any(v != n for v in lengths.values()):
            raise ValueError(f"minute results: columns differ in length (stream_ids {n}, {lengths})")

    @classmethod
    def empty(cls, streams: StreamTable | None = None) -> MinuteResults:
        f, o = np.empty(0), np.empty(0, dtype=object)
        return cls(streams or StreamTable([]), np.empty(0, np.intp), f, f, f, o, f, f, np.empty(0, np.uint8), o)

    @classmethod
    def from_rows(cls, rows: Iterable[MinuteResult]) -> MinuteResults:
        """Columns from rows (a test's expectation, rows read back); streams in order of first row.

        Raises ValueError for a quality that is not a MinuteQuality label.
        """
        rows = list(rows)
        index: dict[tuple[str, ...], int] = {}
        ids = [index.setdefault((r.site, r.process, r.stream, r.scope, r.method, r.activity_unit), len(index)) for r in rows]
        try:
            quality = [_QUALITY_CODE[r.quality] for r in rows]
        except KeyError as exc:
            raise ValueError(f"minute result quality {exc.args[0]!r} is not one of {QUALITY_LABELS}") from None

        def floats(name: str) -> NDArray[np.float64]:
            return np.array([getattr(r, name) for r in rows], dtype=np.float64)

        def texts(name: str) -> NDArray[np.object_]:
            out = np.empty(len(rows), dtype=object)
            out[:] = [getattr(r, name) for r in rows]
            return out

        return cls(
            StreamTable(index),
            np.array(ids, dtype=np.intp),
            floats("minute_start"),
            floats("activity"),
            floats("co2_kg"),
            texts("factor_id"),
            floats("ef_kg_per_unit"),
            floats("coverage"),
            np.array(quality, dtype=np.uint8),
            texts("flags"),
        )

    @classmethod
    def concat(cls, parts: Sequence[MinuteResults]) -> MinuteResults:
        """The rows of `parts`, in order. Parts of different stream tables get a merged table."""
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        table = parts[0].streams
        if all(p.streams == table for p in parts):
            ids = np.concatenate([p.stream_ids for p in parts])
        else:
            index: dict[tuple[str, ...], int] = {}
            remapped = []
            for p in parts:
                codes = np.array([index.setdefault(e, len(index)) for e in p.streams.entries], dtype=np.intp)
                remapped.append(codes[p.stream_ids])
            table, ids = StreamTable(index), np.concatenate(remapped)

        def cat(name: str) -> NDArray:  # type: ignore[type-arg]  # any of the columns' dtypes
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(
            table,
            ids,
            cat("minute_start"),
            cat("activity"),
            cat("co2_kg"),
            cat("factor_id"),
            cat("ef_kg_per_unit"),
            cat("coverage"),
            cat("quality"),
            cat("flags"),
        )

    def __len__(self) -> int:
        return len(self.stream_ids)

    def take(self, index: slice | NDArray[np.bool_] | NDArray[np.intp]) -> MinuteResults:
        """The rows `index` selects (a slice, a boolean mask or row numbers), sharing the stream table."""
        return MinuteResults(
            self.streams,
            self.stream_ids[index],
            self.minute_start[index],
            self.activity[index],
            self.co2_kg[index],
            self.factor_id[index],
            self.ef_kg_per_unit[index],
            self.coverage[index],
            self.quality[index],
            self.flags[index],
        )

    def text(self, name: str) -> NDArray[np.object_]:
        """A text field of every row as an object array of str: a STREAM_FIELDS name, factor_id,
        quality (its label) or flags."""
        if name == "quality":
            return _QUALITY_TEXT[self.quality]
        if name in ("factor_id", "flags"):
            column: NDArray[np.object_] = getattr(self, name)
            return column
        return self.streams.column(name)[self.stream_ids]

    def codes(self, name: str) -> tuple[list[str], NDArray[np.intp]]:
        """A STREAM_FIELDS text field as (its values in the order of their first row, each row's
        index into them): processes to sum over, say, numbered as they first appear."""
        labels, per_stream = np.unique(self.streams.column(name).astype(str), return_inverse=True)
        code = per_stream.reshape(-1)[self.stream_ids]
        seen, first = np.unique(code, return_index=True)
        order = seen[np.argsort(first, kind="stable")]
        renumber = np.zeros(len(labels), dtype=np.intp)
        renumber[order] = np.arange(len(order))
        return [str(labels[k]) for k in order], renumber[code]

    def totals(self, by: str) -> dict[str, float]:
        """co2_kg summed per value of a STREAM_FIELDS field (process, scope), added in row order."""
        labels, code = self.codes(by)
        sums = np.bincount(code, weights=self.co2_kg, minlength=len(labels))
        return dict(zip(labels, sums.tolist(), strict=True))

    def with_flag(self, flag: str, where: NDArray[np.bool_] | None = None) -> MinuteResults:
        """These results with `flag` added to the flags of the rows `where` selects (all by default);
        flags stay sorted and unique."""
        rows = np.flatnonzero(where) if where is not None else np.arange(len(self))
        if not len(rows):
            return self
        flags = self.flags.copy()
        added: dict[str, str] = {}
        for i in rows.tolist():
            old = flags[i]
            new = added.get(old)
            if new is None:
                new = added[old] = ";".join(sorted({*filter(None, old.split(";")), flag}))
            flags[i] = new
        return MinuteResults(
            self.streams,
            self.stream_ids,
            self.minute_start,
            self.activity,
            self.co2_kg,
            self.factor_id,
            self.ef_kg_per_unit,
            self.coverage,
            self.quality,
            flags,
        )

    def columns(self) -> list[list[object]]:
        """Every row's values as Python objects, one list per RESULT_FIELDS field, in that order:
        what a row-wise writer (the ledger's insert, a CSV) zips."""
        return [getattr(self, name).tolist() if name in _FLOAT_FIELDS else self.text(name).tolist() for name in RESULT_FIELDS]

    def rows(self) -> list[MinuteResult]:
        """One MinuteResult per row, in order: for what is about single rows (a test's expectation,
        a row to print); the pipeline's stages read the columns."""
        return list(map(MinuteResult, *self.columns()))


_FLOAT_FIELDS = frozenset(("minute_start", "activity", "co2_kg", "ef_kg_per_unit", "coverage"))
