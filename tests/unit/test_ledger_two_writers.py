"""Two writers on one ledger file: a running gateway's Ledger and a restatement in another process.

The gateway's Ledger keeps the head (seq, hash) in memory. When another writer appends first,
the next append must chain on the real last row, not collide with it or fork the chain.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.core.model import MinuteResult
from gateway.ledger.audit import verify_ledger
from gateway.ledger.store import Ledger
from tests.factories import minute_result, results_of


def _result(minute: int, stream: str = "coke", co2_kg: float = 10.0) -> MinuteResult:
    return minute_result(minute, "sinter", stream, co2_kg, start=0.0, activity=1.0, ef_kg_per_unit=co2_kg)


def test_append_after_another_writer_chains_on_the_real_head(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    gateway = Ledger(path, clock=lambda: 1000.0)
    assert gateway.append(results_of([_result(0), _result(1)])) == 2
    other = Ledger(path, clock=lambda: 2000.0)  # e.g. `emgate ledger restate` in another process
    seq = other.reader.current_seq(60.0, "sinter", "coke")
    assert seq is not None
    assert other.correct([(seq, dataclasses.replace(_result(1), co2_kg=12.0))], "lab NCV") == [3]
    other.close()

    assert gateway.append(results_of([_result(2)])) == 1  # chained on row 3, not on its stale head (row 2)
    assert gateway.head_seq == 4
    assert gateway.correct([(1, dataclasses.replace(_result(0), co2_kg=11.0))], "late sample") == [5]
    gateway.close()

    report = verify_ledger(path)
    assert report.ok, report.problem
    assert report.rows == 5
    reader = Ledger(path, readonly=True)
    current = {(r.minute_start, r.stream): r.co2_kg for _seq, r in reader.reader.current()}
    reader.close()
    assert current == {(0.0, "coke"): 11.0, (60.0, "coke"): 12.0, (120.0, "coke"): 10.0}
