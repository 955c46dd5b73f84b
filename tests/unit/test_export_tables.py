"""Pure aggregation of the monthly export: local months and days, exact sums, quality counts."""

from decimal import Decimal

import numpy as np
import pytest

from gateway.export.documents import ExportContext, build_summary
from gateway.export.manifest import figures_g, restatement_entry
from gateway.export.tables import (
    aggregate_month,
    flag_names,
    month_period,
    month_rows_inside,
    rows_from_records,
)
from gateway.export.times import local_time, local_times, utc_time, utc_times

TZ = "Asia/Shanghai"


def record(
    seq: int,
    minute_start: float,
    process: str = "bf",
    stream: str = "coke",
    *,
    scope: str = "direct",
    co2_kg: float = 1.0,
    activity: float = 0.5,
    unit: str = "t",
    factor: str = "cn.coke",
    ef: float = 3000.0,
    quality: str = "measured",
    coverage: float = 1.0,
    flags: str = "",
) -> tuple[object, ...]:
    method = "electricity" if scope == "indirect" else "fuel_combustion"
    return (
        seq,
        minute_start,
        process,
        stream,
        scope,
        method,
        activity,
        unit,
        co2_kg,
        factor,
        ef,
        coverage,
        quality,
        flags,
    )


def ctx() -> ExportContext:
    return ExportContext(
        site="s", sources={}, factors={}, ledger={"head_seq": 0, "head_hash": "0" * 64}, budget=None
    )


def test_month_is_local_and_days_follow_dst() -> None:
    p = month_period("2026-03", "Europe/Berlin")  # clocks go forward on 29 March: that day has 23 h
    assert p.days == 31 and p.day_labels[28] == "2026-03-29"
    assert p.minutes == 31 * 1440 - 60
    assert np.diff(p.day_starts_s)[28] == 23 * 3600
    sh = month_period("2026-11", TZ)
    assert sh.start_s == 1793462400.0  # 2026-10-31T16:00Z = 2026-11-01T00:00+08:00
    assert sh.minutes == 30 * 1440


@pytest.mark.parametrize(
    "bad", ["2026-13", "2026-1", "26-11", "2026/11", "1969-12", "", "9999-12", "\uff12\uff10\uff12\uff16-\uff11\uff11", "2026-\u0661\u0661"]
)
def test_malformed_month_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_period(bad, TZ)


def test_rows_outside_the_local_month_are_left_out() -> None:
    p = month_period("2026-11", TZ)
    recs = [record(1, p.start_s - 60), record(2, p.start_s), record(3, p.end_s - 60), record(4, p.end_s)]
    assert month_rows_inside(rows_from_records(recs), p)[1] == 2
    t = aggregate_month(rows_from_records(recs), p)
    assert t.rows == 2 and (t.first_seq, t.last_seq) == (2, 3)
    assert t.day_minutes[0, 0] == 1 and t.day_minutes[-1, 0] == 1 and t.day_minutes.sum() == 2


def test_processes_sum_to_total_and_days_to_month_exactly() -> None:
    p = month_period("2026-11", TZ)
    rng = np.random.default_rng(7)
    recs = []
    seq = 0
    for m in range(0, p.minutes, 7):
        for proc, stream, scope in (
            ("bf", "coke", "direct"),
            ("sinter", "breeze", "direct"),
            ("lf", "power", "indirect"),
        ):
            seq += 1
            recs.append(
                record(
                    seq,
                    p.start_s + 60 * m,
                    proc,
                    stream,
                    scope=scope,
                    co2_kg=float(rng.uniform(0, 900)),
                    activity=float(rng.uniform(0, 1)),
                )
            )
    t = aggregate_month(rows_from_records(recs), p)
    s = build_summary(t, ctx())
    total = Decimal(str(s["co2_t"]))
    assert sum(Decimal(str(v)) for v in s["by_process"].values()) == total
    assert (
        Decimal(str(s["scopes"]["direct"]["co2_t"])) + Decimal(str(s["scopes"]["indirect"]["co2_t"])) == total
    )
    assert s["compliance_co2_t"] == s["scopes"]["direct"]["co2_t"] and s["co2_scope"] == "direct+indirect"
    assert t.day_co2_g.sum(axis=0).tolist() == t.line_co2_g.tolist()
    # Grams agree with the unrounded minutes to within the per-cell rounding (0.5 g per day x line).
    raw_kg = sum(r[8] for r in recs)
    assert abs(float(total) * 1000 - raw_kg) <= 0.0005 * t.day_co2_g.size


def test_quality_counts_and_substituted_share() -> None:
    p = month_period("2026-11", TZ)
    recs = [
        record(1, p.start_s, co2_kg=100.0),
        record(2, p.start_s + 60, co2_kg=300.0, quality="substituted", coverage=0.2, flags="rule=last_good"),
        record(3, p.start_s + 120, co2_kg=100.0, quality="estimated", flags="bad_samples=3;counter_resets=1"),
    ]
    t = aggregate_month(rows_from_records(recs), p)
    dq = build_summary(t, ctx())["scopes"]["direct"]["data_quality"]
    assert dq["substituted_minutes"] == 1 and dq["estimated_minutes"] == 1
    assert dq["substituted_co2_t"] == 0.3 and dq["estimated_co2_t"] == 0.1
    assert dq["substituted_estimated_share_pct"] == 80.0
    assert dq["minutes_present"] == 3 and dq["minutes_absent"] == p.minutes - 3
    assert dq["coverage_pct"] == round(100 * 2.2 / p.minutes, 4)
    assert dq["flag_minutes"] == {"bad_samples": 1, "counter_resets": 1, "rule=last_good": 1}
    assert t.flagged.seq.tolist() == [2, 3] and t.flagged.flags == (
        "rule=last_good",
        "bad_samples=3;counter_resets=1",
    )


def test_a_factor_change_mid_month_gives_two_evidence_items() -> None:
    p = month_period("2026-11", TZ)
    half = p.start_s + 15 * 86400
    recs = [
        record(
            i + 1,
            p.start_s + 3600 * i,
            factor="cn.pci" if p.start_s + 3600 * i < half else "site.pci.lab",
            ef=2800.0 if p.start_s + 3600 * i < half else 2600.0,
            co2_kg=10.0,
        )
        for i in range(720)
    ]
    t = aggregate_month(rows_from_records(recs), p)
    uses = sorted(t.factor_uses, key=lambda u: u.first_minute_s)
    assert [t.factor_ids[u.factor] for u in uses] == ["cn.pci", "site.pci.lab"]
    assert [u.minutes for u in uses] == [360, 360]
    assert sum(u.co2_g for u in uses) == int(t.line_co2_g[0]) == 7_200_000


def test_units_and_scopes_are_never_added_together() -> None:
    p = month_period("2026-11", TZ)
    recs = [
        record(1, p.start_s, "lf", "power", scope="indirect", unit="MWh"),
        record(2, p.start_s, "lf", "electrode", scope="direct", unit="t"),
    ]
    rows = rows_from_records(recs)
    assert [(ln.scope, ln.stream) for ln in rows.lines] == [("direct", "electrode"), ("indirect", "power")]
    s = build_summary(aggregate_month(rows, p), ctx())
    assert s["scopes"]["direct"]["by_process"] == {"lf": 0.001} and s["scopes"]["indirect"]["by_process"] == {
        "lf": 0.001
    }


def test_empty_month_exports_zeros() -> None:
    p = month_period("2026-02", TZ)
    s = build_summary(aggregate_month(rows_from_records([]), p), ctx())
    assert s["co2_t"] == 0.0 and s["streams"] == [] and s["data_quality"]["minutes_expected"] == 0


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        ("", []),
        ("bad_samples=3", ["bad_samples"]),
        ("counter_resets=1;rule=hour_average", ["counter_resets", "rule=hour_average"]),
        ("ledger_delayed", ["ledger_delayed"]),
    ],
)
def test_flag_names(flags: str, names: list[str]) -> None:
    assert flag_names(flags) == names


def test_restatement_entry_names_old_new_and_difference() -> None:
    p = month_period("2026-11", TZ)
    before = build_summary(
        aggregate_month(rows_from_records([record(1, p.start_s, co2_kg=1000.0)]), p), ctx()
    )
    after = build_summary(aggregate_month(rows_from_records([record(2, p.start_s, co2_kg=1250.5)]), p), ctx())
    assert restatement_entry(before, before, []) is None
    entry = restatement_entry(before, after, [{"seq": 2, "reason": "late samples"}])
    assert entry is not None
    bf = next(ln for ln in entry["lines"] if ln["scope"] == "direct" and ln["process"] == "bf")
    assert (bf["old_co2_t"], bf["new_co2_t"], bf["difference_co2_t"]) == (1.0, 1.2505, 0.2505)
    assert figures_g(after)[("direct+indirect", "(total)")] == 1_250_500


def test_a_long_sheet_is_cut_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import openpyxl

    from gateway.export import workbook
    from gateway.export.documents import Column, Sheet

    monkeypatch.setattr(workbook, "SHEET_MAX_ROWS", 5)
    sheet = Sheet("x.csv", "X", [Column("n", "N", "0")], rows=[[i] for i in range(8)], totals=[["Total"]])
    ws = openpyxl.load_workbook(io.BytesIO(workbook.build_workbook([], [sheet], title="t")))["X"]
    values = [r[0].value for r in ws.iter_rows()]
    assert values == ["N", 0, 1, 2, 3, 4, "3 more row(s) in x.csv; the sheet shows 5", "Total"]


def test_table_rows_read_back_as_written() -> None:
    """The rows written as XML (not through openpyxl's cells) read back with openpyxl as the
    table holds them: types, number formats, bold totals, text XML cannot hold."""
    import io

    import numpy as np
    import openpyxl

    from gateway.export import workbook
    from gateway.export.documents import Column, Sheet

    cols = [Column("name", "Name"), Column("co2_t", "CO2 (t)", "#,##0.000"), Column("n", "Minutes", "0")]
    rows = [
        ["  padded & <tagged>", 1.25, 3],
        ["bell\x07here", np.float64(0.1), np.int64(7)],
        [None, float("inf"), True],
        ["", 1e-9, -0],
    ]
    sheet = Sheet("t.csv", "T", cols, rows=rows, totals=[["Total", 1.25 + 0.1 + 1e-9, None]])
    data = workbook.build_workbook([("Month", "2026-01", "")], [sheet], title="t")
    ws = openpyxl.load_workbook(io.BytesIO(data))["T"]
    got = [[c.value for c in r] for r in ws.iter_rows()]
    assert got == [
        ["Name", "CO2 (t)", "Minutes"],
        ["  padded & <tagged>", 1.25, 3],
        ["bell\ufffdhere", 0.1, 7],
        [None, "inf", True],
        [None, 1e-9, 0],
        ["Total", 1.25 + 0.1 + 1e-9, None],
    ]
    assert [ws.cell(2, j).number_format for j in (1, 2, 3)] == ["General", "#,##0.000", "0"]
    assert [ws.cell(6, j).font.b for j in (1, 2, 3)] == [True, True, True]
    assert ws.cell(6, 2).number_format == "#,##0.000"
    assert not ws.cell(2, 1).font.b and ws.cell(1, 1).font.b
    assert ws.freeze_panes == "A2"
    assert workbook.build_workbook([("Month", "2026-01", "")], [sheet], title="t") == data


def test_a_table_never_ships_without_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.export import workbook
    from gateway.export.documents import Column, Sheet

    monkeypatch.setattr(workbook, "_placeholder_row", lambda i: b"<row r='2'>not what openpyxl wrote</row>")
    with pytest.raises(RuntimeError, match="lost their rows"):
        workbook.build_workbook([], [Sheet("x.csv", "X", [Column("n", "N")], rows=[[1]])], title="t")


def test_utc_times_match_utc_time() -> None:
    """The flagged-minutes sheet formats its times at once; each must read as utc_time writes it."""
    rng = np.random.default_rng(7)
    ts = np.concatenate([rng.uniform(-1e9, 4e9, 5000), [0.0, 59.999, 60.0, -0.5, -60.0, 1767196800.0]])
    assert utc_times(ts) == [utc_time(float(t)) for t in ts]


@pytest.mark.parametrize(
    "zone",
    ["Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns", "UTC"],
)
def test_local_times_match_local_time(zone: str) -> None:
    """The flagged-minutes sheet writes local times at once, the offset read once an hour and
    found to the second where it changes: every minute of a year with daylight saving (Lord
    Howe's is 30 minutes, at a half hour of UTC), and what it cannot do at once, one by one."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    year = np.arange(1767196800.0, 1767196800.0 + 366 * 86400, 60.0)
    assert local_times(year, tz) == [local_time(t, tz) for t in year.tolist()]
    rng = np.random.default_rng(3)
    scattered = np.sort(60.0 * rng.integers(0, 40_000_000, 2000).astype(np.float64))  # 1970-2046: beyond the span
    odd = np.array([1767196800.5, 1767196859.999])  # not whole seconds
    lmt = np.array([-2.5e9, 1e9])  # before 1970, in local mean time
    for ts in (scattered, odd, lmt, np.zeros(0)):
        assert local_times(ts, tz) == [local_time(t, tz) for t in ts.tolist()]


# --------------------------------------------------------------------------- exact at any magnitude, or refused


def test_a_month_beyond_exact_grams_is_refused_naming_the_cell() -> None:
    """3.4e38 t/h reached the ledger as 1e35 kg: its month was exported as -9,223,372,036,854.775 t."""
    from gateway.export.tables import SumRangeError

    p = month_period("2026-11", TZ)
    recs = [record(1, p.start_s, co2_kg=1000.0), record(2, p.start_s + 86400 + 60, co2_kg=1.0e35), record(3, p.start_s + 120)]
    with pytest.raises(SumRangeError) as exc:
        aggregate_month(rows_from_records(recs), p)
    msg = str(exc.value)
    assert "bf/coke (direct) on 2026-11-02, quality measured, factor cn.coke, ledger rows 2..2" in msg
    assert "sums to 1e+35 kg" in msg and "2**53 g" in msg
    assert (exc.value.line.process, exc.value.first_seq, exc.value.last_seq) == ("bf", 2, 2)


@pytest.mark.parametrize(
    ("co2", "activity", "what"),
    [
        ([float("inf")], [0.5], "CO2 of bf/coke"),
        ([1.5e308, 1.5e308], [0.5, 0.5], "CO2 of bf/coke"),  # each finite, their sum is not: math.fsum overflows
        ([1.0, 1.0], [float("-inf"), float("inf")], "activity of bf/coke"),
        ([1.0], [1e13], "activity of bf/coke"),  # 1e19 millionths: beyond int64
    ],
)
def test_sums_without_an_exact_value_are_refused(co2: list[float], activity: list[float], what: str) -> None:
    from gateway.export.tables import SumRangeError

    p = month_period("2026-11", TZ)
    recs = [record(i + 1, p.start_s + 60 * i, co2_kg=c, activity=a) for i, (c, a) in enumerate(zip(co2, activity, strict=True))]
    with pytest.raises(SumRangeError, match=what):
        aggregate_month(rows_from_records(recs), p)


def test_large_months_below_the_limit_are_exact() -> None:
    """Up to 2**53 g the figures are whole grams, and the days and processes add up to the total."""
    p = month_period("2026-11", TZ)
    kg = 2.0**53 / 1000.0 / 4  # a quarter of the limit per row, four rows less a little
    recs = [record(i + 1, p.start_s + 86400 * i + 60, co2_kg=kg - 0.001) for i in range(4)]
    t = aggregate_month(rows_from_records(recs), p)
    grams = [int(g) for g in t.day_co2_g[:4, 0].tolist()]
    assert grams == [round((kg - 0.001) * 1000)] * 4
    assert int(t.line_co2_g[0]) == sum(grams) < 2**53


def test_exact_sum_is_nan_where_no_sum_exists() -> None:
    import math

    from gateway.ledger.month import exact_sum

    assert exact_sum([0.1] * 10) == 1.0
    assert math.isnan(exact_sum([1e308, 1e308])) and math.isnan(exact_sum([float("inf"), float("-inf")]))
    assert exact_sum([float("inf"), 1.0]) == float("inf")
