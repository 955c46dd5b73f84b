"""The gateway's minutes as a test's influxd holds them, read back independently of the gateway."""

from __future__ import annotations

from datetime import datetime

from tests.services.influxd import InfluxService


def influx_rows(influxdb: InfluxService, measurement: str) -> dict[tuple[float, str, str], dict[str, object]]:
    """Every point of `measurement`, keyed by (minute start epoch s, process, stream).

    Fails the test if a key is there twice: the sink's keyed writes must never duplicate a minute.
    """
    res = influxdb.influxql(f'SELECT * FROM "{measurement}"')
    series = res["results"][0].get("series", [])
    out: dict[tuple[float, str, str], dict[str, object]] = {}
    for s in series:
        cols = s["columns"]
        for v in s["values"]:
            row = dict(zip(cols, v, strict=True))
            t = datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp()
            key = (t, row["process"], row["stream"])
            assert key not in out, f"InfluxDB holds {key} twice"
            out[key] = row
    return out
