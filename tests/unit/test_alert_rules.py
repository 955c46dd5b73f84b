"""The alert state machine: hysteresis, minimum duration, updates, rate limit, restore; the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from gateway.alerts.model import Alert
from gateway.alerts.rules import AlertRules, Observation, severity_for
from gateway.ledger.alerts_table import AlertStore
from gateway.settings.alerts import ThresholdConfig

T0 = 1_514_736_000.0  # 2018-01-01T00:00:00+08:00
KEY = ("spike", "blast_furnace", "")


def cfg(**kw: object) -> ThresholdConfig:
    base: dict[str, object] = {
        "raise_at": {"warning": 1.0, "critical": 2.0},
        "clear_at": 0.8,
        "min_duration_s": 180,
        "clear_duration_s": 120,
        "min_update_interval_s": 0,
        "max_events_per_hour": 60,
    }
    base.update(kw)
    return ThresholdConfig(**base)  # type: ignore[arg-type]


def feed(
    rules: AlertRules, measures: list[float | None], c: ThresholdConfig, start: float = T0
) -> list[Alert]:
    """One measure per minute; `at` is each minute's end."""
    out: list[Alert] = []
    for i, m in enumerate(measures):
        out += rules.observe(KEY, Observation(m, f"measure {m}", {"v": m}), start + 60.0 * (i + 1), c)
    return out


def states(events: list[Alert]) -> list[tuple[str, str]]:
    return [(e.state, e.severity) for e in events]


def test_raise_needs_the_minimum_duration_and_a_blip_is_nothing() -> None:
    rules = AlertRules("works", "Asia/Shanghai")
    assert feed(rules, [1.5, 1.5, 0.5, 1.5, 1.5], cfg()) == []  # two minutes, a dip, two minutes
    events = feed(rules, [1.5], cfg(), start=T0 + 300)  # the third minute in a row
    assert states(events) == [("raised", "warning")]
    e = events[0]
    assert e.id == "spike:blast_furnace:-:20171231T1603Z"  # raised at the start of the pending run (UTC)
    assert e.at == "2018-01-01T00:06:00+08:00"
    assert e.raised_at == "2018-01-01T00:03:00+08:00"
    assert e.event_id == e.id + "#1"
    assert [a.id for a in rules.active()] == [e.id]


def test_hysteresis_prevents_flapping_on_a_noisy_signal() -> None:
    noise = np.random.default_rng(2).normal(0.0, 0.06, 600)
    measures = list(1.0 + noise)  # hovering around the raise level
    c = cfg(min_duration_s=0, clear_duration_s=0, min_update_interval_s=900)
    with_band = feed(AlertRules("w", "UTC"), measures, c)
    assert [e.state for e in with_band if e.state != "updated"] == ["raised"]
    assert len(with_band) <= 1 + 600 // 15  # updates: at most one per 15 min
    # the same signal with raise and clear (nearly) at the same level flaps dozens of times
    no_band = feed(AlertRules("w", "UTC"), measures, c.model_copy(update={"clear_at": 0.999}))
    assert sum(e.state == "raised" for e in no_band) > 50


def test_clear_after_clear_duration_keeps_the_id() -> None:
    rules = AlertRules("w", "UTC")
    c = cfg(material_change=10.0)
    raised = feed(rules, [1.5] * 3, c)
    cleared = feed(rules, [0.5, 0.9, 0.5, 0.5], c, start=T0 + 180)  # 0.9 is above clear_at: restart the count
    assert states(cleared) == [("cleared", "warning")]
    assert cleared[0].id == raised[0].id and cleared[0].seq == 2
    assert cleared[0].at == "2017-12-31T16:07:00+00:00"  # this rules instance's zone is UTC
    assert rules.active() == []


def test_severity_changes_hold_like_raises_and_clears() -> None:
    rules = AlertRules("w", "UTC")
    c = cfg(min_duration_s=120, clear_duration_s=120, material_change=10.0)
    events = feed(rules, [1.2, 1.2, 2.1, 1.5, 2.1, 2.1, 1.9, 1.85, 1.7, 1.9, 1.7, 1.2, 1.2], c)
    # up: 2.1 for one minute is not enough, two minutes are; down: deadband = 1.0 - 0.8 = 0.2, so
    # critical holds down to 1.8, and below it must stay two minutes (1.9 restarts the count)
    assert states(events) == [("raised", "warning"), ("updated", "critical"), ("updated", "warning")]
    assert [round((e.at_s - T0) / 60) for e in events] == [2, 6, 12]


@pytest.mark.parametrize(
    ("current", "measure", "expected"),
    [
        (None, 0.9, None),
        (None, 1.0, "warning"),
        (None, 2.5, "critical"),
        ("critical", 1.81, "critical"),
        ("critical", 1.79, "warning"),
        ("warning", 0.85, "warning"),
    ],
)
def test_severity_for(current: str | None, measure: float, expected: str | None) -> None:
    assert severity_for(cfg(), measure, current) == expected


def test_updates_only_on_material_change_and_rate_limited() -> None:
    rules = AlertRules("w", "UTC")
    c = cfg(min_duration_s=0, material_change=0.1, min_update_interval_s=600, raise_at={"warning": 1.0})
    measures = [1.0, 1.05, 1.09, 1.3, 1.6, 1.9] + [1.9] * 10 + [1.0] * 12
    events = feed(rules, measures, c)
    # 1.05 and 1.09 are not material; 1.3 is but comes 3 min after the raise: it waits. At
    # minute 11 (10 min after the raise) 1.9 vs the 1.0 published is material: one update with
    # the latest value. The drop back to 1.0 waits 10 min after that update in turn.
    assert states(events) == [("raised", "warning"), ("updated", "warning"), ("updated", "warning")]
    assert events[1].details["measure"] == 1.9
    assert events[1].at_s - events[0].at_s == 600
    assert events[2].details["measure"] == 1.0
    assert events[2].at_s - events[1].at_s == 600


def test_max_events_per_hour() -> None:
    rules = AlertRules("w", "UTC")
    c = cfg(min_duration_s=0, raise_at={"warning": 1.0}, max_events_per_hour=3, material_change=0.01)
    events = feed(rules, [1.0 + i for i in range(30)], c)
    assert len(events) == 3  # raise + 2 updates, then nothing until the hour has passed


def test_reraise_gets_a_new_id_and_waits_the_cooldown() -> None:
    rules = AlertRules("w", "UTC")
    c = cfg(min_duration_s=0, clear_duration_s=0, reraise_after_s=300)
    first = feed(rules, [1.5, 0.5], c)
    again = feed(rules, [1.5] * 6, c, start=T0 + 120)
    assert states(first) == [("raised", "warning"), ("cleared", "warning")]
    assert len(again) == 1 and again[0].state == "raised"
    assert again[0].at_s - first[1].at_s >= 300
    assert again[0].id != first[0].id


def test_no_data_holds_the_state() -> None:
    rules = AlertRules("w", "UTC")
    c = cfg(min_duration_s=0, clear_duration_s=0)
    assert states(feed(rules, [1.5, None, None, 0.5], c)) == [("raised", "warning"), ("cleared", "warning")]


def test_restore_continues_the_same_alert() -> None:
    rules = AlertRules("w", "UTC")
    c = cfg(min_duration_s=0, clear_duration_s=0)
    raised = feed(rules, [1.5], c)
    later = AlertRules("w", "UTC")
    later.restore(rules.active())
    assert feed(later, [1.5, 1.5], c, start=T0 + 60) == []  # still active: no second raise
    cleared = feed(later, [0.1], c, start=T0 + 180)
    assert cleared[0].id == raised[0].id and cleared[0].seq == 2 and cleared[0].state == "cleared"


def test_alert_json_round_trip() -> None:
    rules = AlertRules("works", "Asia/Shanghai")
    e = feed(rules, [1.5] * 3, cfg())[0]
    d = json.loads(e.to_json())
    assert {"id", "event_id", "kind", "severity", "state", "at", "process", "message", "details"} <= d.keys()
    assert d["process"] == "blast_furnace" and d["details"]["v"] == 1.5
    assert Alert.from_json(e.to_json()) == e


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"raise_at": {"warning": 1.0}, "clear_at": 1.0}, "hysteresis"),
        ({"raise_at": {"warning": 2.0, "critical": 1.0}, "clear_at": 0.0}, "increase with severity"),
        ({"raise_at": {}, "clear_at": 0.0}, "at least one"),
        ({"raise_at": {"warning": 1.0}, "clear_at": 0.0, "hysteresis_s": 5}, "Extra inputs"),
    ],
)
def test_threshold_config_errors(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ThresholdConfig(**kw)  # type: ignore[arg-type]


def test_store_is_idempotent_and_an_outbox(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "ledger.sqlite")
    rules = AlertRules("w", "UTC")
    c = cfg(min_duration_s=0, clear_duration_s=0)
    raised = feed(rules, [1.5], c)
    assert store.add(raised) == 1
    assert store.add(raised) == 0  # the same event twice is stored once
    assert [a.id for a in store.active()] == [raised[0].id]
    pending = store.unpublished()
    assert [json.loads(p)["event_id"] for _, p in pending] == [raised[0].event_id]
    store.mark_published(pending[0][0], T0)
    assert store.unpublished() == []
    store.add(feed(rules, [0.1], c, start=T0 + 60))
    assert store.active() == []
    assert [e.state for e in store.events()] == ["raised", "cleared"]
    store.close()
    again = AlertStore(tmp_path / "ledger.sqlite")  # reopening keeps the table and the outbox
    assert len(again.unpublished()) == 1
    again.close()
