"""The alert state machine: hysteresis, minimum duration, de-duplication and a rate limit.

Theory of operation. Every alert is keyed by (kind, process, subject); at most one alert per
key is active, so the same condition seen every minute is one alert, not one per minute
(de-duplication). Each key is fed one measure per closed minute, a number that rises with
trouble. Per key:

    idle --measure >= lowest raise_at--> pending --held min_duration_s--> ACTIVE  (event "raised")
    pending --measure drops below lowest raise_at--> idle                 (no event: a blip)
    ACTIVE --measure < clear_at--> clearing --held clear_duration_s--> idle  (event "cleared")
    clearing --measure >= clear_at--> ACTIVE                              (no event)

Hysteresis: raising needs the raise level, clearing needs the lower clear level, so a noisy
measure hovering around one threshold cannot flap. Severity steps up when the measure has held a
higher level for min_duration_s, and steps down from level s only after clear_duration_s below
raise_at[s] - deadband, with deadband = lowest raise_at - clear_at, the same band that
separates raise from clear.

An active alert emits "updated" only on a material change: a new severity, or its headline
figure (the shortfall for a budget, the measure otherwise) moving by more than
`material_change` relative to the figure last published (or to `scale`, e.g. the allowance,
so a shortfall near zero does not update on every tonne). Updates are rate-limited (at most one
per `min_update_interval_s` and `max_events_per_hour` events per alert); a skipped update is not
lost, the next minute compares against the last published figure again. Raises and clears are
never rate-limited, only delayed: `reraise_after_s` keeps a cleared key from raising again at
once. A measure of None (no data this minute) leaves the state as it is.

`observe_many` feeds a run of minutes of one key (a replay's day, or a live gateway's one
minute) through the same `observe`, skipping in numpy the minutes that cannot change anything:
an idle key below its lowest raise level, or an active one whose severity holds and whose figure
has not moved materially. Pending and clearing keys, and every minute that may emit, go through
`observe` itself, so a run gives exactly the events of the same minutes fed one at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gateway.alerts.model import Alert, AlertKind, AlertState, iso_at, json_safe, make_alert_id
from gateway.settings.alerts import SEVERITY_ORDER, ThresholdConfig

AlertKey = tuple[AlertKind, str | None, str]  # kind, process, subject


@dataclass(frozen=True, slots=True)
class Observation:
    """One minute's measure for one key, with what the operator message needs."""

    measure: float | None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    figure: float | None = None  # the headline number for "material change"; default: measure
    scale: float | None = None  # what material_change is relative to; default: the last published figure
    # (message, details) built only when an event is emitted: most minutes emit nothing, and a
    # replay evaluates half a million of them
    describe: Callable[[], tuple[str, dict[str, Any]]] | None = None

    def text(self) -> tuple[str, dict[str, Any]]:
        return self.describe() if self.describe is not None else (self.message, self.details)


@dataclass
class _Track:
    state: str = "idle"  # idle | pending | active | clearing
    since_s: float = 0.0
    alert: Alert | None = None  # last event published
    last_cleared_s: float = float("-inf")
    last_figure: float = 0.0
    event_times: deque[float] = field(default_factory=deque)
    next_severity: str | None = None  # a severity change waiting out its duration
    next_since_s: float = 0.0


def severity_for(cfg: ThresholdConfig, measure: float, current: str | None) -> str | None:
    """Severity the measure earns, with the step-down band applied to the current one."""
    levels = [(s, cfg.raise_at[s]) for s in SEVERITY_ORDER if s in cfg.raise_at]
    deadband = levels[0][1] - cfg.clear_at
    best = None
    for s, level in levels:
        if measure >= level:
            best = s
    if current is not None and current in cfg.raise_at:
        cur_rank = SEVERITY_ORDER.index(current)
        best_rank = SEVERITY_ORDER.index(best) if best else -1
        if best_rank < cur_rank and measure >= cfg.raise_at[current] - deadband:
            return current
        if best is None:
            return levels[0][0]  # still active above clear_at: keep the lowest level
    return best


class AlertRules:
    """All alert keys of one site. `observe` returns the events to store and publish."""

    def __init__(self, site: str, tz: str) -> None:
        self.site, self.tz = site, tz
        self._tracks: dict[AlertKey, _Track] = {}

    def active(self) -> list[Alert]:
        """The latest event of every active alert (state raised or updated), by id."""
        out = [t.alert for t in self._tracks.values() if t.state in ("active", "clearing") and t.alert]
        return sorted(out, key=lambda a: a.id)

    def restore(self, alerts: list[Alert]) -> None:
        """Take back alerts that were active when the gateway stopped (from the store)."""
        for a in alerts:
            t = self._tracks.setdefault((a.kind, a.process, a.subject), _Track())
            t.state, t.alert, t.since_s = "active", a, a.at_s
            t.last_figure = float(a.details.get("figure", 0.0))

    def observe(self, key: AlertKey, obs: Observation, at_s: float, cfg: ThresholdConfig, span_s: float = 60.0) -> list[Alert]:
        """Feed one measure taken over [at_s - span_s, at_s); returns 0 or 1 event."""
        if not cfg.enabled or obs.measure is None:
            return []
        t = self._tracks.get(key)
        if t is None:
            t = self._tracks[key] = _Track()
        m = obs.measure
        lowest = cfg.lowest_raise
        if t.state == "idle" and m < lowest:
            return []  # the common case, kept cheap
        if t.state in ("idle", "pending"):
            if m < lowest or at_s - t.last_cleared_s < cfg.reraise_after_s:
                t.state = "idle"
                return []
            if t.state == "idle":
                t.state, t.since_s = "pending", at_s - span_s
            if at_s - t.since_s < cfg.min_duration_s:
                return []
            severity = severity_for(cfg, m, None) or "info"
            alert_id = make_alert_id(key[0], key[1], key[2], t.since_s)
            t.state = "active"
            return [self._emit(t, key, alert_id, 1, severity, "raised", obs, at_s, raised_s=t.since_s)]
        # active or clearing
        assert t.alert is not None
        if m < cfg.clear_at:
            if t.state == "active":
                t.state, t.since_s = "clearing", at_s - span_s
            if at_s - t.since_s < cfg.clear_duration_s:
                return []
            t.state, t.last_cleared_s = "idle", at_s
            return [self._emit(t, key, t.alert.id, t.alert.seq + 1, t.alert.severity, "cleared", obs, at_s)]
        t.state = "active"
        figure = obs.figure if obs.figure is not None else m
        current = t.alert.severity
        severity = severity_for(cfg, m, current) or current
        if severity != current:
            # a severity change must hold like a raise (up) or a clear (down) before it counts
            if t.next_severity != severity:
                t.next_severity, t.next_since_s = severity, at_s - span_s
            up = SEVERITY_ORDER.index(severity) > SEVERITY_ORDER.index(current)
            if at_s - t.next_since_s < (cfg.min_duration_s if up else cfg.clear_duration_s):
                severity = current
        else:
            t.next_severity = None
        changed = severity != current
        scale = obs.scale if obs.scale is not None else abs(t.last_figure)
        moved = abs(figure - t.last_figure) > cfg.material_change * max(scale, 1e-9)
        if not (changed or moved):
            return []
        escalation = changed and SEVERITY_ORDER.index(severity) > SEVERITY_ORDER.index(t.alert.severity)
        if not escalation and not self._rate_ok(t, at_s, cfg):
            return []
        return [self._emit(t, key, t.alert.id, t.alert.seq + 1, severity, "updated", obs, at_s)]

    def observe_many(
        self,
        key: AlertKey,
        measures: NDArray[np.float64],
        at_s: NDArray[np.float64],
        cfg: ThresholdConfig,
        observation: Callable[[int], Observation],
        *,
        figures: NDArray[np.float64] | None = None,
        scales: NDArray[np.float64] | None = None,
        span_s: float = 60.0,
    ) -> list[tuple[int, Alert]]:
        """Feed consecutive minutes' measures for one key: (minute index, event) pairs.

        `observation(i)` builds minute i's Observation (its measure must be measures[i], its
        figure figures[i] and its scale scales[i] when given); it is called only for minutes
        that go through `observe`.
        """
        n = len(measures)
        if not cfg.enabled or n == 0:
            return []
        events: list[tuple[int, Alert]] = []
        at_list = at_s.tolist()
        i = 0
        done_to, skip, signature = 0, np.zeros(0, dtype=bool), None
        while i < n:
            t = self._tracks.get(key)
            state = t.state if t is not None else "idle"
            if state in ("pending", "clearing"):  # the duration decides: minute by minute
                events += [(i, a) for a in self.observe(key, observation(i), at_list[i], cfg, span_s)]
                i += 1
                continue
            now = (state, t.alert.severity if t and t.alert else None, t.last_figure if t else None)
            if now != signature or i >= done_to or (t is not None and t.next_severity is not None):
                signature, done_to = now, min(n, i + _LOOKAHEAD)
                skip = self._quiet(t, state, measures[i:done_to], figures, scales, i, done_to, cfg)
                base = i
            rest = np.flatnonzero(~skip[i - base :])
            if not len(rest):
                i = done_to
                continue
            i += int(rest[0])
            events += [(i, a) for a in self.observe(key, observation(i), at_list[i], cfg, span_s)]
            i += 1
        return events

    @staticmethod
    def _quiet(
        t: _Track | None,
        state: str,
        m: NDArray[np.float64],
        figures: NDArray[np.float64] | None,
        scales: NDArray[np.float64] | None,
        lo: int,
        hi: int,
        cfg: ThresholdConfig,
    ) -> NDArray[np.bool_]:
        """Minutes in which `observe` would return nothing and change nothing (NaN never is)."""
        if state == "idle" or t is None or t.alert is None or t.next_severity is not None:
            return m < cfg.lowest_raise if state == "idle" else np.zeros(len(m), dtype=bool)
        current = t.alert.severity
        levels = [(s, cfg.raise_at[s]) for s in SEVERITY_ORDER if s in cfg.raise_at]
        if current in cfg.raise_at:
            # severity_for keeps `current`: it is the best level, or a lower one within the band
            nxt = [v for s, v in levels if SEVERITY_ORDER.index(s) > SEVERITY_ORDER.index(current)]
            below_next = m < nxt[0] if nxt else np.ones(len(m), dtype=bool)
            deadband = levels[0][1] - cfg.clear_at
            holds = below_next & ((m >= cfg.raise_at[current]) | (m >= cfg.raise_at[current] - deadband))
            if levels[0][0] == current:
                holds = below_next.copy()
        else:
            holds = m < levels[0][1]  # no level earned: observe keeps the current one
        figure = figures[lo:hi] if figures is not None else m
        scale = scales[lo:hi] if scales is not None else abs(t.last_figure)
        still = ~(np.abs(figure - t.last_figure) > cfg.material_change * np.maximum(scale, 1e-9))
        return (m >= cfg.clear_at) & holds & still & ~np.isnan(m)

    def _rate_ok(self, t: _Track, at_s: float, cfg: ThresholdConfig) -> bool:
        while t.event_times and at_s - t.event_times[0] >= 3600.0:
            t.event_times.popleft()
        if t.event_times and at_s - t.event_times[-1] < cfg.min_update_interval_s:
            return False
        return len(t.event_times) < cfg.max_events_per_hour

    def _emit(
        self,
        t: _Track,
        key: AlertKey,
        alert_id: str,
        seq: int,
        severity: str,
        state: AlertState,
        obs: Observation,
        at_s: float,
        raised_s: float | None = None,
    ) -> Alert:
        figure = obs.figure if obs.figure is not None else float(obs.measure or 0.0)
        message, extra = obs.text()
        details = json_safe({**extra, "measure": obs.measure, "figure": figure})
        raised_at = iso_at(raised_s, self.tz) if raised_s is not None else (t.alert.raised_at if t.alert else "")
        kind: AlertKind = key[0]
        alert = Alert(
            id=alert_id,
            seq=seq,
            kind=kind,
            severity=severity,
            state=state,
            at=iso_at(at_s, self.tz),
            at_s=at_s,
            process=key[1],
            message=message,
            site=self.site,
            subject=key[2],
            raised_at=raised_at,
            details=details,
        )
        t.alert, t.last_figure, t.next_severity = alert, figure, None
        t.event_times.append(at_s)
        return alert


_LOOKAHEAD = 1440  # minutes judged per numpy pass
