"""Alert events (and the ledger's daily seals) as InfluxDB points: which tags and fields they become.

The alerts table is an outbox like the minutes table: the InfluxDB sink reads events past its
`influx_alerts` cursor (Outbox.alert_events, gateway/ledger/outbox.py) and moves the cursor after
InfluxDB acknowledged them. A point is keyed by site, kind, process, alert id and state at the
event's second, so a repeated write overwrites itself. The line protocol itself is written by
gateway/codec/lineproto.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gateway.codec.lineproto import point_line
from gateway.ledger.alerts_table import AlertEventRow

ALERT_CURSOR = "influx_alerts"
MEASUREMENT = "emgate_alerts"


def alert_lines(events: Sequence[AlertEventRow]) -> str:
    """The events as a line-protocol body, one point each, in order."""
    return "\n".join(
        point_line(
            MEASUREMENT,
            (
                ("site", json.loads(e.payload).get("site", "")),
                ("kind", e.kind),
                ("process", e.process or "-"),
                ("alert_id", e.alert_id),
                ("state", e.state),
            ),
            (("severity", e.severity), ("message", e.message), ("event", e.payload)),
            e.at_s,
        )
        for e in events
    )


SEAL_MEASUREMENT = "emgate_seals"


def seal_lines(seals: Sequence[str]) -> str:
    """Daily seals (their JSON payloads, gateway/ledger/seals.py) as points keyed by site and day,
    at the second they were sealed: a witness of the ledger's head outside the box."""
    lines = []
    for payload in seals:
        s = json.loads(payload)
        lines.append(
            point_line(
                SEAL_MEASUREMENT,
                (("site", s["site"]), ("day", s["day"])),
                (("head_seq", float(s["head_seq"])), ("head_hash", s["head_hash"]), ("seal", payload)),
                float(s["sealed_at_s"]),
            )
        )
    return "\n".join(lines)
