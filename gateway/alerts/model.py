"""The Alert event: one JSON object per raise, update or clear (schema: docs/alerts.md), and
AlertsView: what the status page and the MQTT publisher read of the alert stage's state."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

AlertState = Literal["raised", "updated", "cleared"]
AlertKind = Literal["budget", "intensity", "spike", "data_quality", "deposit"]


def json_safe(value: Any) -> Any:
    """The value with every non-finite float replaced by None: NaN and inf are not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def iso_at(epoch_s: float, tz: str) -> str:
    """ISO 8601 with the site's offset, to the second: 2018-04-12T11:00:00+08:00."""
    return datetime.fromtimestamp(epoch_s, ZoneInfo(tz)).isoformat(timespec="seconds")


def make_alert_id(kind: str, process: str | None, subject: str, raised_s: float) -> str:
    """Stable for the alert's whole life: what it is about and the minute it was raised."""
    stamp = datetime.fromtimestamp(raised_s, UTC).strftime("%Y%m%dT%H%MZ")
    return f"{kind}:{process or '-'}:{subject or '-'}:{stamp}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One life-cycle event of an alert. `id` is the alert's; `event_id` is this event's.

    seq counts the alert's events from 1 (the raise), so `event_id` = f"{id}#{seq}" is unique
    and a consumer that sees an event twice (QoS 1 after a reconnect) drops the second.
    """

    id: str
    seq: int
    kind: AlertKind
    severity: str
    state: AlertState
    at: str
    at_s: float
    process: str | None
    message: str
    site: str
    subject: str = ""
    raised_at: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def event_id(self) -> str:
        return f"{self.id}#{self.seq}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["event_id"] = self.event_id
        return d

    def to_json(self) -> str:
        # allow_nan=False: NaN is not JSON; the stage never puts one in details.
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Alert:
        d = json.loads(text)
        d.pop("event_id", None)
        return cls(**d)


class AlertsView(Protocol):
    """The alert stage's state as the status page reads it (gateway.alerts.budget_stage.AlertStage).

    `budget_position` is the retained budget object (budget_tracker.budget_payload: allowance_t,
    trajectory_t, actual_t, projected_year_end_t, shortfall_t, ...); None before the first
    position, and always without a [budget].
    """

    def active(self) -> list[Alert]: ...

    @property
    def budget_position(self) -> dict[str, Any] | None: ...

    @property
    def deposits(self) -> list[dict[str, Any]]:
        """The watched months as of the last deposit check (gateway/alerts/deposit.py
        MonthDeposit.details: month, due_date, days_left, open, ...); [] before the first."""
        ...


class VersionedAlertsView(AlertsView, Protocol):
    """The same, with versions that move whenever the active set or the budget position changed,
    so a publisher re-sends a retained topic only then (gateway.sinks.alerts_mqtt)."""

    @property
    def active_version(self) -> int: ...

    @property
    def budget_version(self) -> int: ...
