"""`emgate lab import`: lab results as chained evidence, factors by evidence, late results restated.

The ledger is recorded by `emgate replay` (the live stages) or by the gateway's own minute close,
never written by hand; the CLI runs through `gateway.cli.main` on real files in tmp_path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from analytics.units import CO2_PER_C
from gateway.cli import main
from gateway.core.model import SampleBatch
from gateway.ledger.evidence import evidence_dir
from gateway.ledger.store import Ledger
from gateway.pipeline import Gateway
from gateway.settings.load import load_settings

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 10, 8, 0, tzinfo=TZ).timestamp()
LAB_FROM = datetime(2026, 11, 10, 9, 0, tzinfo=TZ).timestamp()
LAB_TO = datetime(2026, 11, 10, 9, 30, tzinfo=TZ).timestamp()
# cn.coke: NCV 28.435 GJ/t, CC 0.02942 tC/GJ, OF 0.93; the lab's sample: 29.1 GJ/t, 0.0300 tC/GJ
DEFAULT_EF = 28.435 * 0.02942 * 0.93 * CO2_PER_C
LAB_EF = 29.1 * 0.0300 * 0.93 * CO2_PER_C

SITE_TOML = """
[site]
name = "lab-works"
timezone = "Asia/Shanghai"

[signals."bf.coke_tph"]
kind = "rate"
unit = "t/h"
max_gap_s = 15.0

[signals."sinter.coke_tph"]
kind = "rate"
unit = "t/h"
max_gap_s = 15.0

[signals."bof.pig_iron_tph"]
kind = "rate"
unit = "t/h"
max_gap_s = 15.0

[signals."meter.energy_kwh"]
kind = "counter"
unit = "kWh"
max_gap_s = 15.0

[[streams]]
process = "blast_furnace"
stream = "coke"
signal = "bf.coke_tph"
method = "fuel_combustion"
factor = "cn.coke"

[[streams]]
process = "sinter"
stream = "coke_breeze"
signal = "sinter.coke_tph"
method = "fuel_combustion"
factor = "cn.coke"

[[streams]]
process = "bof"
stream = "pig_iron"
signal = "bof.pig_iron_tph"
method = "material"
factor = "cn.pig_iron"

[[streams]]
process = "utilities"
stream = "purchased_electricity"
signal = "meter.energy_kwh"
method = "electricity"
factor = "cn.grid.2023.national_avg"
"""

HEADER = (
    "sample_id,stream,sampled_from,sampled_to,lab,accreditation,ncv_gj_per_unit,carbon_tc_per_gj,"
    "carbon_fraction,hydrogen_pct,total_sulfur_pct,moisture_pct,report_file,supersedes\n"
)
GOOD_ROW = "COKE-1110,blast_furnace/coke,2026-11-10T09:00,2026-11-10T09:30,Baosteel QC lab,CNAS L0123,29.1,0.0300,,0.5,0.7,4.2,reports/coke-1110.pdf,\n"


def write_lab(folder: Path, rows: str, name: str = "lab.csv", reports: tuple[str, ...] = ("coke-1110.pdf",)) -> Path:
    (folder / "reports").mkdir(exist_ok=True)
    for r in reports:
        (folder / "reports" / r).write_bytes(b"%PDF-1.4 stamped report " + r.encode())
    path = folder / name
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


def lab_import(config: Path, ledger: Path, csv: Path) -> int:
    return main(["lab", "import", "--config", str(config), "--ledger", str(ledger), str(csv)])


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    """(config, ledger) with two hours of one morning replayed on the factors' defaults."""
    config = tmp_path / "site.toml"
    config.write_text(SITE_TOML, encoding="utf-8")
    csv = tmp_path / "recorded.csv"
    with csv.open("w") as fh:
        fh.write("ts,signal,value\n")
        meter = 50_000.0
        for k in range(0, 2 * 3600 + 120, 5):
            t = START + k
            meter += 2.5
            v = 40.0 + (k % 600) / 100.0
            fh.write(
                f"{t!r},bf.coke_tph,{v!r}\n{t!r},sinter.coke_tph,{v / 4!r}\n"
                f"{t!r},bof.pig_iron_tph,{v * 3!r}\n{t!r},meter.energy_kwh,{meter!r}\n"
            )
    assert main(["replay", "--config", str(config), "--input", str(csv), "--out", str(tmp_path / "rec")]) == 0
    return config, tmp_path / "rec" / "ledger.sqlite"


def current(ledger: Path) -> dict[tuple[float, str, str], tuple[int, float, str, float]]:
    lg = Ledger(ledger, readonly=True)
    try:
        return {(r.minute_start, r.process, r.stream): (seq, r.co2_kg, r.factor_id, r.activity) for seq, r in lg.reader.current()}
    finally:
        lg.close()


def evidence_state(ledger: Path) -> tuple[list[tuple[object, ...]], list[str]]:
    """The evidence table's rows (none when it does not exist) and the evidence store's files."""
    db = sqlite3.connect(ledger)
    try:
        has = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'evidence'").fetchone()
        rows = db.execute("SELECT * FROM evidence ORDER BY seq").fetchall() if has else []
    finally:
        db.close()
    folder = evidence_dir(ledger)
    return rows, sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_late_lab_result_restates_exactly_the_minutes_of_its_period(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = recorded
    before = current(ledger)
    bf = {k: v for k, v in before.items() if k[1] == "blast_furnace"}
    assert {v[2] for v in bf.values()} == {"cn.coke"}
    export = ["export", "--config", str(config), "--ledger", str(ledger), "--month", "2026-11", "--out", str(tmp_path / "x")]
    assert main(export) == 0
    capsys.readouterr()

    assert lab_import(config, ledger, write_lab(tmp_path, GOOD_ROW)) == 0
    out = capsys.readouterr().out
    assert "COKE-1110" in out and "blast_furnace" in out and "restated" in out

    after = current(ledger)
    assert after.keys() == before.keys()
    in_period = [k for k in before if k[1] == "blast_furnace" and LAB_FROM <= k[0] < LAB_TO]
    assert len(in_period) == 30
    for key, (seq, co2, fid, activity) in after.items():
        old_seq, old_co2, old_fid, old_activity = before[key]
        assert activity == old_activity
        if key in in_period:
            assert fid == "lab:COKE-1110" and seq > old_seq
            assert math.isclose(co2 / old_co2, LAB_EF / DEFAULT_EF, rel_tol=1e-12), key
        else:  # outside the period, and the other stream burning coke in it: unchanged
            assert (seq, co2, fid) == (old_seq, old_co2, old_fid), key

    sha = hashlib.sha256((tmp_path / "reports" / "coke-1110.pdf").read_bytes()).hexdigest()
    lg = Ledger(ledger, readonly=True)
    reasons = {row.reason for row in lg.reader.history() if row.supersedes is not None}
    lg.close()
    assert len(reasons) == 1 and "COKE-1110" in next(iter(reasons)) and sha in next(iter(reasons))
    copy = evidence_dir(ledger) / f"{sha}.pdf"
    assert copy.read_bytes() == (tmp_path / "reports" / "coke-1110.pdf").read_bytes()
    assert copy.stat().st_mode & 0o077 == 0

    assert main(["ledger", "verify", str(ledger)]) == 0
    assert "evidence: ok — 1 record(s), 1 report copy" in capsys.readouterr().out
    # the export made before the import is restated; the lab result is named with its report
    assert main(export) == 0
    (entry,) = json.loads((tmp_path / "x" / "restatement.json").read_text())["restatements"]
    listed = entry["corrections_since_previous_export"]
    assert len(listed) == 30 and all("COKE-1110" in c["reason"] for c in listed)
    summary = (tmp_path / "x" / "summary.json").read_text()
    assert f"lab result COKE-1110: Baosteel QC lab (CNAS L0123), report reports/coke-1110.pdf sha256 {sha}" in summary
    # the same resolution again changes nothing: restate finds the lab minutes current
    assert main(["ledger", "restate", "--config", str(config), str(ledger), "--from", "2026-11-10T00:00+08:00",
                 "--to", "2026-11-11T00:00+08:00", "--reason", "again", "--dry-run"]) == 0
    assert "0 correction row(s) would be appended" in capsys.readouterr().out


def test_a_material_result_and_a_superseding_result(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    config, ledger = recorded
    before = current(ledger)
    rows = (
        GOOD_ROW
        + "PIG-1110,bof/pig_iron,2026-11-10T08:00,2026-11-10T10:00,Baosteel QC lab,CNAS L0123,,,0.045,,,,reports/pig.pdf,\n"
    )
    assert lab_import(config, ledger, write_lab(tmp_path, rows, reports=("coke-1110.pdf", "pig.pdf"))) == 0
    after = current(ledger)
    pig = [k for k in before if k[1] == "bof" and START <= k[0] < START + 7200]
    for key in pig:
        assert after[key][2] == "lab:PIG-1110"
        assert math.isclose(after[key][1] / before[key][1], 0.045 * CO2_PER_C / 0.172, rel_tol=1e-12)
    # a corrected report for the coke, covering 09:10-09:20 only: the rest of 09:00-09:30 reverts
    fix = "COKE-1110B,blast_furnace/coke,2026-11-10T09:10,2026-11-10T09:20,Baosteel QC lab,CNAS L0123,29.5,0.0300,,,,,reports/fix.pdf,COKE-1110\n"
    assert lab_import(config, ledger, write_lab(tmp_path, fix, name="fix.csv", reports=("fix.pdf",))) == 0
    final = current(ledger)
    for key, (_, co2, fid, _) in final.items():
        if key[1] != "blast_furnace":
            continue
        in_fix = LAB_FROM + 600 <= key[0] < LAB_FROM + 1200
        assert fid == ("lab:COKE-1110B" if in_fix else "cn.coke"), key
        ef = 29.5 * 0.0300 * 0.93 * CO2_PER_C if in_fix else DEFAULT_EF
        assert math.isclose(co2 / before[key][1], ef / DEFAULT_EF, rel_tol=1e-12)
    assert main(["ledger", "verify", str(ledger)]) == 0


def close_minute(gw: Gateway, t0: float) -> None:
    ids = np.array([gw.signals.id(s) for s in ("bf.coke_tph", "sinter.coke_tph", "bof.pig_iron_tph")], np.int32)
    for k in range(0, 60, 5):
        gw.window.ingest(SampleBatch("test", ids, np.full(3, t0 + k), np.array([40.0, 10.0, 120.0]), np.zeros(3, np.uint8)))
    asyncio.run(gw.on_frame(gw.window.close(1)))


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def test_the_gateway_uses_evidence_imported_before_its_minutes_without_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    ledger = tmp_path / "ledger.sqlite"
    config.write_text(SITE_TOML + f'\n[ledger]\npath = "{ledger}"\n', encoding="utf-8")
    # imported before the gateway ever ran: the ledger is created for it
    assert lab_import(config, ledger, write_lab(tmp_path, GOOD_ROW)) == 0
    settings = load_settings(config)
    gw = Gateway.build(settings, clock=_Clock(LAB_FROM - 60))  # type: ignore[arg-type]
    try:
        gw.window.next_minute = LAB_FROM - 60
        close_minute(gw, LAB_FROM - 60)  # 08:59: before the sample's period
        close_minute(gw, LAB_FROM)  # 09:00: the lab result, used directly
        later = "SINTER-1110,sinter/coke_breeze,2026-11-10T09:00,2026-11-10T10:00,Baosteel QC lab,CNAS L0123,27.0,0.0290,,,,,reports/s.pdf,\n"
        assert lab_import(config, ledger, write_lab(tmp_path, later, name="s.csv", reports=("s.pdf",))) == 0
        close_minute(gw, LAB_FROM + 60)  # imported while running: used from the next minute
    finally:
        gw.close()
    rows = current(ledger)
    assert rows[(LAB_FROM - 60, "blast_furnace", "coke")][2] == "cn.coke"
    assert rows[(LAB_FROM, "blast_furnace", "coke")][2] == "lab:COKE-1110"
    assert rows[(LAB_FROM, "sinter", "coke_breeze")][2] == "lab:SINTER-1110"  # restated by the import
    assert rows[(LAB_FROM + 60, "sinter", "coke_breeze")][2] == "lab:SINTER-1110"  # computed with it
    assert rows[(LAB_FROM + 60, "blast_furnace", "coke")][2] == "lab:COKE-1110"
    co2, activity = rows[(LAB_FROM, "blast_furnace", "coke")][1], rows[(LAB_FROM, "blast_furnace", "coke")][3]
    assert math.isclose(co2, activity * LAB_EF * 1000.0, rel_tol=1e-12)
    assert main(["ledger", "verify", str(ledger)]) == 0


BAD_ROWS = {
    "unknown stream": ("COKE-1110,blast_furnace/cokes,2026-11-10T09:00,2026-11-10T09:30,L,CNAS 1,29.1,0.03,,,,,reports/coke-1110.pdf,\n", "is not a [[streams]] entry"),
    "electricity takes no lab values": ("E-1,utilities/purchased_electricity,2026-11-10T09:00,2026-11-10T09:30,L,CNAS 1,29.1,0.03,,,,,reports/coke-1110.pdf,\n", "takes no lab values"),
    "overlap within the file": (GOOD_ROW + GOOD_ROW.replace("COKE-1110,", "COKE-1111,").replace("T09:00", "T09:20").replace("T09:30", "T10:00"), "overlaps sample 'COKE-1110' (line 3)"),
    "duplicate sample id": (GOOD_ROW + GOOD_ROW.replace("T09:00", "T10:00").replace("T09:30", "T10:30"), "repeats line 3"),
    "ncv of another unit": (GOOD_ROW.replace(",29.1,", ",29100,"), "ncv_gj_per_unit 29100 is outside"),
    "carbon per GJ too high": (GOOD_ROW.replace(",0.0300,", ",29.4,"), "carbon_tc_per_gj 29.4 is outside"),
    "carbon fraction as a percentage": ("PIG,bof/pig_iron,2026-11-10T08:00,2026-11-10T10:00,L,CNAS 1,,,4.5,,,,reports/coke-1110.pdf,\n", "carbon_fraction 4.5 is outside"),
    "percentage over 100": (GOOD_ROW.replace(",4.2,", ",142,"), "moisture_pct 142 is outside"),
    "period backwards": (GOOD_ROW.replace("T09:30", "T08:30"), "is not after sampled_from"),
    "missing report": (GOOD_ROW.replace("coke-1110.pdf", "nope.pdf"), "cannot read"),
    "fuel without carbon of the sample": (GOOD_ROW.replace(",0.0300,", ",,"), "give ncv_gj_per_unit and carbon_tc_per_gj"),
    "material without carbon fraction": ("PIG,bof/pig_iron,2026-11-10T08:00,2026-11-10T10:00,L,CNAS 1,,,,,,,reports/coke-1110.pdf,\n", "give carbon_fraction"),
    "malformed number": (GOOD_ROW.replace(",29.1,", ",29,1,"), "more cells than columns"),
    "malformed number 2": (GOOD_ROW.replace(",29.1,", ",29.1 GJ,"), "is not a number"),
    "malformed date": (GOOD_ROW.replace("2026-11-10T09:00", "10/11/2026 09:00"), "is not an ISO 8601 datetime"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_bad_file_is_refused_whole(
    case: str, recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = recorded
    rows, expect = BAD_ROWS[case]
    # a good row first: nothing of the file is stored
    good = "PIG-OK,bof/pig_iron,2026-11-10T08:00,2026-11-10T08:30,L,CNAS 1,,,0.045,,,,reports/coke-1110.pdf,\n"
    csv = write_lab(tmp_path, good + rows)
    before, state = current(ledger), evidence_state(ledger)
    capsys.readouterr()
    assert lab_import(config, ledger, csv) == 2
    err = capsys.readouterr().err
    assert expect in err, err
    assert f"{csv}:3" in err or f"{csv}:4" in err, err
    assert current(ledger) == before and evidence_state(ledger) == state


def test_a_file_that_is_not_utf8_is_refused(recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, ledger = recorded
    csv = write_lab(tmp_path, GOOD_ROW.replace("Baosteel QC lab", "宝钢检测中心"))
    csv.write_bytes(csv.read_text(encoding="utf-8").encode("gbk"))
    state = evidence_state(ledger)
    assert lab_import(config, ledger, csv) == 2
    err = capsys.readouterr().err
    assert f"{csv}:2: not UTF-8" in err
    assert evidence_state(ledger) == state


def test_overlap_with_an_imported_sample_needs_supersedes_and_a_second_import_is_refused(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = recorded
    csv = write_lab(tmp_path, GOOD_ROW)
    assert lab_import(config, ledger, csv) == 0
    before, state = current(ledger), evidence_state(ledger)
    capsys.readouterr()
    assert lab_import(config, ledger, csv) == 2  # the same file again
    err = capsys.readouterr().err
    assert f"{csv}:2: sample_id 'COKE-1110' was already imported" in err
    overlap = write_lab(tmp_path, GOOD_ROW.replace("COKE-1110,", "COKE-2,").replace("T09:00", "T09:29"), name="o.csv")
    assert lab_import(config, ledger, overlap) == 2
    assert f"{overlap}:2: sample 'COKE-2'" in capsys.readouterr().err
    assert current(ledger) == before and evidence_state(ledger) == state


def test_verify_catches_a_tampered_record_and_a_changed_report_copy(
    recorded: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, ledger = recorded
    assert lab_import(config, ledger, write_lab(tmp_path, GOOD_ROW)) == 0
    copy = next(evidence_dir(ledger).iterdir())
    original = copy.read_bytes()
    copy.chmod(0o600)
    copy.write_bytes(original + b" edited")
    capsys.readouterr()
    assert main(["ledger", "verify", str(ledger)]) == 1
    assert "the copy was changed" in capsys.readouterr().err
    copy.write_bytes(original)
    assert main(["ledger", "verify", str(ledger)]) == 0

    db = sqlite3.connect(ledger)
    with pytest.raises(sqlite3.DatabaseError, match="never updated"):
        db.execute("UPDATE evidence SET record = replace(record, '29.1', '31.0')")
    db.execute("DROP TRIGGER evidence_no_update")  # a forger with write access to the file
    db.execute("UPDATE evidence SET record = replace(record, '29.1', '31.0')")
    db.commit()
    db.close()
    capsys.readouterr()
    assert main(["ledger", "verify", str(ledger)]) == 1
    assert "evidence row 1 (lab COKE-1110): hash mismatch" in capsys.readouterr().err
