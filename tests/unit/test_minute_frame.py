"""MinuteWindow -> MinuteFrame -> EmissionCalculator on a plant with every kind of trouble, pinned
to the last bit: the minute results in tests/cases/minutes/mixed_plant.json (live, and in frames of
four minutes), so a faster path must give the same lists, in the same order. If results change on
purpose, rewrite the file (`python -m tests.unit.test_minute_frame`) and say why in the commit.

The file was first written by the implementation before the columnar MinuteFrame, when a frame of
several minutes gave other figures than live closes. It was rewritten when each minute became a
function of the readings stamped before its own close (minute end + delay_s; see
gateway/stages/minute.py), which makes every frame size give the live minutes:
  * steam (end-labelled 5-minute totals, delay 2 s) minutes 8, 12, 13, 16-18 of the frames: a row
    stamped after those minutes' close no longer reaches them; substituted, as live.
  * power (a counter silent from 21:58 to 24:00) minutes 21-22 of the frames: the delta known only
    at 24:00 no longer reaches minutes that closed before it; partial and substituted, as live.
  * gas (a step signal, max_gap_s 5 s) minutes 12 and 20, live and frames: a level now holds
    max_gap_s after its reading whatever follows, so the silences starting at 11:57 and 20:20 keep
    their first 5 s (coverage 0 -> 0.035 and 0.301 -> 0.384; the amounts are substituted anyway).
And again when every reading was held to its signal's bounds (plausibility before accounting):
  * coke: the minutes with an OUT_OF_RANGE reading carry the flag `out_of_range=N` beside
    bad_samples (figures unchanged).
  * bof_in: its blow-out dip went to -30 t/h, beyond the -10 t/h of zero drift a t/h meter may
    show, so it would now be flagged instead of reaching the negative balance it is there for;
    the dip is -52 instead of -80 t/h (minutes 15-17 change).

The plant and its readings: tests/support/mixed_plant.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateway.core.model import MinuteResult
from gateway.core.signals import SignalTable
from gateway.settings.factors import factor_table_of
from gateway.stages import minute_history
from gateway.stages.emissions import EmissionCalculator
from gateway.stages.minute import MinuteWindow
from tests.support.mixed_plant import MINUTES, T0, batches, settings

EXPECTED = Path(__file__).parents[1] / "cases" / "minutes" / "mixed_plant.json"


def _run(close_minutes: int, export_every: int = 0) -> list[MinuteResult]:
    """Minute results with closes of `close_minutes` (1 = live), exporting the state every
    `export_every` closes as the gateway's checkpoint does."""
    s = settings()
    window = MinuteWindow(SignalTable.from_settings(s), s.window, next_minute=T0)
    calc = EmissionCalculator(s, factor_table_of(s.factors))
    results: list[MinuteResult] = []
    closes = 0
    for b in batches():
        window.ingest(b)
        if window.due(float(b.ts[0])) >= close_minutes:
            results += calc.compute(window.close(close_minutes)).rows()
            closes += 1
            if export_every and closes % export_every == 0:
                window.export_state()
    return results


def _row(r: MinuteResult) -> list[object]:
    fields = (r.minute_start, r.process, r.stream, r.scope, r.method, r.activity, r.activity_unit, r.co2_kg)
    return [*fields, r.factor_id, r.ef_kg_per_unit, r.coverage, r.quality, r.flags]


def _pinned() -> dict[str, list[list[object]]]:
    return {"live": [_row(r) for r in _run(1)], "frames_of_4": [_row(r) for r in _run(4)]}


@pytest.fixture(scope="module")
def live() -> list[MinuteResult]:
    return _run(1)


def test_live_minutes_are_those_pinned(live: list[MinuteResult]) -> None:
    expected = json.loads(EXPECTED.read_text())["live"]
    assert len(live) == len(expected) == 9 * MINUTES
    assert all(r.site == "mixed" for r in live)
    for got, want in zip(live, expected, strict=True):
        assert _row(got) == want
    # the scenario does reach every branch it is meant to
    assert {r.quality for r in live} == {"measured", "partial", "substituted", "missing", "estimated"}
    flags = {f.split("=")[0] for r in live for f in r.flags.split(";") if f}
    assert flags == {"rule", "bad_samples", "counter_resets", "negative_balance", "out_of_range"}
    assert {r.factor_id for r in live if r.stream == "coke"} == {"cn.coke", "site.coke.lab"}


def test_frames_of_many_minutes_are_those_pinned(live: list[MinuteResult]) -> None:
    """A frame of four minutes lists each stream's four minutes in turn, with the live figures."""
    got = _run(4)
    expected = json.loads(EXPECTED.read_text())["frames_of_4"]
    assert len(got) == len(expected) == 9 * MINUTES
    for r, want in zip(got, expected, strict=True):
        assert _row(r) == want
    assert [r.stream for r in got[:8]] == ["out"] * 4 + ["coke"] * 4
    assert sorted(map(_row, got)) == sorted(map(_row, live))


@pytest.mark.parametrize("close_minutes", [2, 3, 7, MINUTES])
def test_every_frame_size_gives_the_live_minutes(live: list[MinuteResult], close_minutes: int) -> None:
    """Replay closes a day at a time, live one minute: the same readings give the same minutes to
    the last bit, through gaps, substitution, a counter's wrap, reset and silence, interval totals
    that arrive after their minutes closed, a step signal and late readings."""
    got = {(r.minute_start, r.process, r.stream): _row(r) for r in _run(close_minutes)}
    assert len(got) == 9 * (MINUTES // close_minutes) * close_minutes
    assert got == {(r.minute_start, r.process, r.stream): _row(r) for r in live if r.minute_start < max(got)[0] + 60.0}


def test_deferred_history_gives_what_eager_history_gives(live: list[MinuteResult], monkeypatch: pytest.MonkeyPatch) -> None:
    """Substitution histories are folded lazily; exporting a checkpoint at every close, or folding
    at every close or after a few minutes, a few signals at a time, changes no result."""
    assert _run(1, export_every=1) == live
    assert _run(4) == _run(4, export_every=1)
    monkeypatch.setattr(minute_history, "_FOLD_SIGNALS", 4)  # folded in blocks of signals
    for fold_minutes in (0, 3):
        monkeypatch.setattr(minute_history, "_FOLD_MINUTES", fold_minutes)
        assert _run(1, export_every=7) == live
        assert _run(4, export_every=1) == _run(4)


@pytest.mark.parametrize("fold_every", [1, 5])
def test_checkpoint_history_is_what_each_rule_reads(fold_every: int) -> None:
    """The history a checkpoint carries is the tail of each signal's whole history that its rule
    reads, whether the window folded its minutes into histories (every close, or every few) or
    kept them as the closes' arrays."""
    s = settings()
    lazy, eager = (MinuteWindow(SignalTable.from_settings(s), s.window, next_minute=T0) for _ in range(2))
    closes = 0
    for batch in batches():
        for w in (lazy, eager):
            w.ingest(batch)
            if w.due(float(batch.ts[0])):
                w.close(w.due(float(batch.ts[0])))
                closes += w is eager
                if w is eager and closes % fold_every == 0:
                    w._histories.fold_all()
    got, want = lazy.export_state().history, eager.export_state().history
    for field in ("ids", "next_slot", "counts", "amounts", "slots"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    whole = eager._histories  # every minute folded: the histories themselves
    whole.fold_all()
    names = SignalTable.from_settings(s).names
    for i, h in got.histories().items():
        full = whole.of(i)
        assert full is not None and h.next_slot == full.next_slot == MINUTES
        kept = minute_history.RULE_NEEDS[s.signals[names[i]].substitution]
        np.testing.assert_array_equal(h.amounts, full.amounts[-kept:])
        np.testing.assert_array_equal(h.slots, full.slots[-kept:])
    by_name = dict(zip((names[i] for i in got.ids.tolist()), got.counts.tolist(), strict=True))
    assert by_name["coke"] == 1 and by_name["gas"] > 1 and "bof_out" not in by_name  # last_good, hour_average, none


def test_frame_rows_by_name() -> None:
    s = settings()
    window = MinuteWindow(SignalTable.from_settings(s), s.window, next_minute=T0)
    for b in batches()[:200]:
        window.ingest(b)
    frame = window.close(2)
    assert list(frame.signals) == sorted(s.signals) and len(frame.signals) == len(s.signals)
    coke = frame.signals["coke"]
    row = frame.rows["coke"]
    np.testing.assert_array_equal(coke.amount, frame.amount[row])
    assert coke.rule.tolist() == frame.rule[row].tolist() and coke.bad_samples.tolist() == frame.bad_samples[row].tolist()
    assert frame.amount.shape == frame.quality.shape == frame.rule.shape == (len(s.signals), 2)


def _write_pinned() -> None:
    """Rewrite EXPECTED from the current code: one minute per line, so a diff shows what changed."""
    lists = [
        f'"{name}": [\n' + ",\n".join(json.dumps(r, separators=(",", ":")) for r in rows) + "\n]"
        for name, rows in _pinned().items()
    ]
    EXPECTED.write_text("{\n" + ",\n".join(lists) + "\n}\n")


if __name__ == "__main__":
    _write_pinned()


def test_histories_keep_only_what_each_rule_reads_however_long_the_window_runs() -> None:
    """A gateway runs for months: a history must not grow to its 1,440-minute capacity for a rule
    that reads one entry (10,000 signals x 1,440 amounts and slots would be 230 MB)."""
    rules = ("none", "last_good", "hour_average", "lookback_max")
    needs = np.array([minute_history.RULE_NEEDS[r] for r in rules], dtype=np.int64)
    hist = minute_history.SignalHistories(needs)
    no_gap = np.empty(0, dtype=np.intp)
    for close in range(1_500):  # a day and an hour, one minute a close, as live
        hist.add(np.full((len(rules), 1), float(close)), no_gap)
        assert len(hist._deferred) <= minute_history._FOLD_MINUTES + 1
    hist.fold_all()
    sizes = {rule: (0 if hist.of(i) is None else hist.of(i).amounts.size) for i, rule in enumerate(rules)}  # type: ignore[union-attr]
    assert sizes == {"none": 0, "last_good": 1, "hour_average": 60, "lookback_max": minute_history.CAPACITY}
    last_good = hist.of(1)
    assert last_good is not None and last_good.next_slot == 1_500
    assert last_good.amounts.tolist() == [1_499.0] and last_good.slots.tolist() == [1_499]
    hour = hist.of(2)
    assert hour is not None and hour.slots.tolist() == list(range(1_440, 1_500))


def test_last_good_and_none_signals_keep_no_object_and_nothing_deferred() -> None:
    """A plant's bulk (last_good, none) costs four numbers a signal, not a history object and an
    hour of close arrays: at 100,000 signals those were 35 MB and 48 MB."""
    needs = np.array([1] * 1000 + [0] * 10 + [60], dtype=np.int64)
    hist = minute_history.SignalHistories(needs)
    for close in range(200):
        hist.add(np.full((len(needs), 1), float(close)), np.empty(0, dtype=np.intp))
    assert set(hist._history) <= {1010}  # only the hour_average signal has an object
    assert all(a.shape[0] == 1 for a in hist._deferred)  # its row alone is deferred
    h = hist.of(7)
    assert h is not None and h.amounts.tolist() == [199.0] and h.slots.tolist() == [199] and h.next_slot == 200
    none = hist.of(1005)
    assert none is not None and none.amounts.size == 0 and none.next_slot == 200


def test_history_columns_that_do_not_fit_are_refused_on_load() -> None:
    hist = minute_history.SignalHistories(np.array([1, 1, 60], dtype=np.int64))
    ok = minute_history.HistoryColumns(
        np.array([0, 2], np.int32), np.array([10, 10]), np.array([1, 2]), np.array([1.0, 2.0, 3.0]), np.array([9, 7, 8])
    )
    hist.load(ok)
    first = hist.of(0)
    assert first is not None and first.amounts.tolist() == [1.0] and hist.of(1) is None
    hour = hist.of(2)
    assert hour is not None and hour.slots.tolist() == [7, 8]
    bad = [
        ok.__class__(ok.ids, ok.next_slot, ok.counts, ok.amounts, np.array([10, 7, 8])),  # a slot at next_slot
        ok.__class__(ok.ids, ok.next_slot, ok.counts, ok.amounts, np.array([9, 8, 7])),  # not increasing
        ok.__class__(np.array([0, 3], np.int32), ok.next_slot, ok.counts, ok.amounts, ok.slots),  # no signal 3
        ok.__class__(ok.ids, ok.next_slot, np.array([1, 1]), ok.amounts, ok.slots),  # counts do not add up
    ]
    for columns in bad:
        with pytest.raises(ValueError):
            minute_history.SignalHistories(np.array([1, 1, 60], dtype=np.int64)).load(columns)
    # a checkpoint taken while signal 0 read an hour (its rule changed since): last_good reads its last entry
    changed = minute_history.HistoryColumns(
        np.array([0], np.int32), np.array([5]), np.array([3]), np.array([1.0, 2.0, 4.0]), np.array([1, 2, 4])
    )
    hist.load(changed)
    h = hist.of(0)
    assert h is not None and h.amounts.tolist() == [4.0] and h.slots.tolist() == [4] and h.next_slot == 5
