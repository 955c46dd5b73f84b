"""The status snapshot: one JSON document the page, the live table and tests read.

Built from what the gateway already keeps (gateway.http.view.GatewayView: health, the window's,
the InfluxDB sink's and the ledger's counters, the alert stage) plus the views' MinuteHistory;
nothing here touches the hot path.

Budgets and alerts come from the alert stage (gateway.alerts.model.AlertsView) when the site
configures [budget] or [alerts]; the page shows those sections only then. `alerts_view` reads:

- `active()` -> the active alerts (gateway.alerts.model.Alert: kind, severity, process,
  message, raised_at, at_s, ...);
- `budget_position` -> the latest budget payload (gateway.alerts.budget_tracker.budget_payload:
  allowance_t, trajectory_t, actual_t, projected_year_end_t, shortfall_t, ...) or None.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any

from gateway.http.history import MinuteHistory
from gateway.http.view import GatewayView


def finite(x: Any) -> Any:
    """JSON has no NaN/Infinity: map them to None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def _plain(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A record's fields as JSON values: scalars, lists and dicts as they are, anything else as text."""
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, Enum) and isinstance(v.value, (str, int)):
            out[k] = v.value
        elif isinstance(v, (list, dict)):
            try:
                json.dumps(v, allow_nan=True)
                out[k] = v
            except (TypeError, ValueError):
                out[k] = str(v)
        else:
            out[k] = str(v)
    return out


def alerts_view(gw: GatewayView) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """(active alerts, budget positions); None where the gateway has no alert stage, and an
    empty list of positions before the first one."""
    if gw.alerts is None:
        return None, None
    alerts = [_plain(dataclasses.asdict(a)) for a in gw.alerts.active()]
    position = gw.alerts.budget_position
    return alerts, [] if position is None else [_plain(position)]


def device_rows(gw: GatewayView, now: float) -> list[dict[str, Any]]:
    rows = []
    for name, h in sorted(gw.health.components.items()):
        rows.append(
            {
                "name": name,
                "ok": h.ok,
                "last_good": h.last_good,
                "age_s": None if h.last_good is None else max(0.0, now - h.last_good),
                "polls": h.polls,
                "errors": h.errors,
                "consecutive_errors": h.consecutive_errors,
                "latency_ms": None if h.latency_s is None else h.latency_s * 1000.0,
                "last_error": h.last_error,
            }
        )
    return rows


def build_snapshot(gw: GatewayView, history: MinuteHistory) -> dict[str, Any]:
    """Everything the page shows, as plain JSON (kg, s, ms; epoch seconds for times)."""
    now = gw.clock.now()
    latest = history.latest_minute()
    counters = gw.window.counters
    alerts, budgets = alerts_view(gw)
    influx = gw.influx
    snap: dict[str, Any] = {
        "site": gw.settings.site.name,
        "timezone": gw.settings.site.timezone,
        "now": now,
        "processes": sorted(history.processes),
        "series": history.series(),
        "latest": None if latest is None else {"minute_start": latest[0], "co2_kg": latest[1]},
        "totals": {
            "last_hour_kg": history.last_hour_kg(),
            "today_kg": dict(history.day_kg),
            "year_kg": dict(history.year_kg),
            "today_by_scope_kg": dict(history.scope_day_kg),
        },
        "quality": history.last_quality,
        "close_lag_s": history.close_lag.last_s,
        "devices": device_rows(gw, now),
        "influx": None
        if influx is None
        else {
            "backlog_rows": influx.counters.backlog,
            "points_written": influx.counters.points_written,
            "batches_failed": influx.counters.batches_failed,
        },
        "window": {
            "samples": counters.samples,
            "late": counters.late,
            "bad": counters.bad,
            "out_of_range": counters.out_of_range,
            "minutes_closed": counters.minutes_closed,
        },
        "ledger_rows": gw.ledger.head_seq,
        "alerts": alerts,
        "budgets": budgets,
        "deposits": None if gw.alerts is None else [_plain(d) for d in gw.alerts.deposits],
    }
    plain: dict[str, Any] = finite(snap)
    return plain
