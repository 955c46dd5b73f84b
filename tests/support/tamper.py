"""What someone who can write a ledger file can do to it, for the tests that show what catches it."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from gateway.ledger.format import FIELDS, GENESIS_HASH, canonical_row, normalized_values


def rewrite_halving_co2(path: Path) -> None:
    """What someone who can write the file does: halve every CO2 value and chain the rows again
    with the project's own functions, so that `ledger verify` passes."""
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER IF EXISTS minutes_no_update")
    prev = GENESIS_HASH
    cols = ", ".join(FIELDS)
    for seq, *values, supersedes, reason, recorded_at in db.execute(
        f"SELECT seq, {cols}, supersedes, reason, recorded_at FROM minutes ORDER BY seq"
    ).fetchall():
        values[FIELDS.index("co2_kg")] = values[FIELDS.index("co2_kg")] / 2
        payload = canonical_row(seq, normalized_values(values), supersedes, reason, recorded_at)
        digest = hashlib.sha256(bytes.fromhex(prev) + payload).digest()
        db.execute("UPDATE minutes SET co2_kg = ?, digest = ? WHERE seq = ?", (values[FIELDS.index("co2_kg")], digest, seq))
        prev = digest.hex()
    db.execute("UPDATE meta SET value = ? WHERE key = 'head_hash'", (prev,))  # the head the ledger records too
    db.commit()
    db.close()
