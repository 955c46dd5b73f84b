"""The status snapshot: one JSON document the page, the live table and tests read.

Built from what the gateway already keeps (gw.health, gw.window.counters, gw.influx.counters,
gw.ledger) plus a MinuteHistory listener; nothing here touches the hot path.

Budgets and alerts come from the alert stage (gateway/alerts/budget_stage.py AlertStage, a
result listener) when the site configures [budget] or [alerts]; the page shows those sections
only then. `alerts_view` finds it as `gw.alerts` or among `gw.listeners` and reads:

- `active()` -> the active alerts (gateway.alerts.model.Alert: kind, severity, process,
  message, raised_at, at_s, ...);
- `budget_position` -> the latest budget payload (gateway.alerts.budget_stage.budget_payload:
  allowance_t, trajectory_t, actual_t, projected_year_end_t, shortfall_t, ...) or None.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.http.history import MinuteHistory


def finite(x: Any) -> Any:
    """JSON has no NaN/Infinity: map them to None, recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def _record(obj: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        raw = dataclasses.asdict(obj)
    elif isinstance(obj, Mapping):
        raw = dict(obj)
    elif hasattr(obj, "model_dump"):
        raw = obj.model_dump()
    else:
        raw = {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif hasattr(v, "value") and isinstance(v.value, (str, int)):  # enums
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


def _alert_engine(gw: Any) -> Any:
    engine = getattr(gw, "alerts", None)
    if engine is not None:
        return engine
    for listener in getattr(gw, "listeners", ()):
        if callable(getattr(listener, "active", None)) and hasattr(listener, "budget_position"):
            return listener
    return None


def alerts_view(gw: Any) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """(active alerts, budget positions); None where the gateway has no alert stage."""
    engine = _alert_engine(gw)
    if engine is None:
        return None, None
    alerts = [_record(a) for a in engine.active()]
    position = getattr(engine, "budget_position", None)
    if callable(position):
        position = position()
    if position is None:
        budgets: list[dict[str, Any]] = []
    elif isinstance(position, Mapping) or not isinstance(position, Iterable):
        budgets = [_record(position)]
    else:
        budgets = [_record(b) for b in position]
    return alerts, budgets


def device_rows(gw: Any, now: float) -> list[dict[str, Any]]:
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


def build_snapshot(gw: Any, history: MinuteHistory) -> dict[str, Any]:
    """Everything the page shows, as plain JSON (kg, s, ms; epoch seconds for times)."""
    now = gw.clock.now()
    latest = history.latest_minute()
    counters = gw.window.counters
    alerts, budgets = alerts_view(gw)
    influx = getattr(gw, "influx", None)
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
    }
    return finite(snap)
