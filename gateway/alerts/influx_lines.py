"""Alert events as InfluxDB lines, read from the ledger's alerts table after a cursor.

The alerts table is an outbox like the minutes table: the InfluxDB sink reads events past its
`influx_alerts` cursor and moves the cursor after InfluxDB acknowledged them. A point is keyed
by site, kind, process, alert id and state at the event's second, so a repeated write
overwrites itself.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

ALERT_CURSOR = "influx_alerts"
MEASUREMENT = "emgate_alerts"


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def _text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def alert_lines(db: sqlite3.Connection, after: int, limit: int) -> tuple[str, int, int]:
    """(line protocol, last seq, events) for up to `limit` events after seq `after`; ("", after, 0) if none."""
    try:
        rows: list[Any] = db.execute(
            "SELECT a.seq, a.alert_id, a.kind, a.severity, a.state, a.at_s, a.process, a.message, a.payload "
            "FROM alerts a WHERE a.seq > ? ORDER BY a.seq LIMIT ?",
            (after, limit),
        ).fetchall()
    except sqlite3.OperationalError:  # no alerts table: alerts are not configured
        return "", after, 0
    if not rows:
        return "", after, 0
    lines = []
    for _seq, alert_id, kind, severity, state, at_s, process, message, payload in rows:
        site = json.loads(payload).get("site", "")
        lines.append(
            f"{MEASUREMENT},site={_tag(site)},kind={_tag(kind)},process={_tag(process or '-')},"
            f"alert_id={_tag(alert_id)},state={_tag(state)} severity={_text(severity)},message={_text(message)},"
            f"event={_text(payload)} {int(at_s)}"
        )
    return "\n".join(lines), int(rows[-1][0]), len(rows)
