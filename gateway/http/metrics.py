"""Prometheus /metrics: a custom Collector that reads the gateway's own counters at scrape time.

Nothing is recorded on the hot path for Prometheus: the sources, the minute window, the ledger
and the InfluxDB sink already count what they do (plain ints, a bisect per poll for latency),
and `GatewayCollector.collect()` turns those numbers into metric families when scraped.
Every name starts with `emgate_`; counters end in `_total`, units are in the name.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.core.health import LATENCY_BUCKETS_S
from gateway.http.history import MinuteHistory
from gateway.http.view import GatewayView

_COMPONENT = re.compile(r"^(?P<kind>[a-z_]+)\[(?P<name>.+)\]$")


def _source_of(component: str) -> tuple[str, str]:
    """'modbus[bf-1]' -> ('modbus', 'bf-1'); 'influx' -> ('influx', 'influx')."""
    m = _COMPONENT.match(component)
    return (m["kind"], m["name"]) if m else (component, component)


class GatewayCollector(Collector):
    """Reads the gateway's counters and an optional MinuteHistory on each scrape.

    Args:
        gw: the gateway (gateway.pipeline.Gateway) as its views see it.
        history: the views' MinuteHistory, for the close lag and today's CO2.
        sse_clients: the number of open status page event streams, when the page is served.
    """

    def __init__(
        self, gw: GatewayView, history: MinuteHistory | None = None, sse_clients: Callable[[], int] | None = None
    ) -> None:
        self._gw, self._history, self._sse_clients = gw, history, sse_clients

    def collect(self) -> Iterator[Metric]:
        gw = self._gw
        counters = gw.window.counters

        read = CounterMetricFamily(
            "emgate_samples_read", "Readings received from each source.", labels=["source"]
        )
        late = CounterMetricFamily(
            "emgate_samples_late", "Readings dropped because their minute had closed.", labels=["source"]
        )
        future = CounterMetricFamily(
            "emgate_samples_future",
            "Readings refused because they were stamped more than [window] future_tolerance_s ahead of the gateway clock.",
            labels=["source"],
        )
        for name, c in sorted(counters.sources.items()):
            read.add_metric([name], c.samples)
            late.add_metric([name], c.late)
            future.add_metric([name], c.future)
        dropped = CounterMetricFamily(
            "emgate_samples_dropped",
            "Readings dropped at a full sample queue (poll cadence kept).",
            labels=["source"],
        )
        missed = CounterMetricFamily(
            "emgate_polls_missed",
            "Poll ticks passed over because the gateway was more than a poll period late (its own load, not the device's); "
            "their seconds are gaps in the minute.",
            labels=["source"],
        )
        for src in gw.sources:  # a poll's batch holds one reading per point
            dropped.add_metric([src.cfg.name], src.counters.dropped_batches * len(src.cfg.points))
            missed.add_metric([src.cfg.name], src.counters.missed_polls)
        mqtt_dropped = CounterMetricFamily(
            "emgate_mqtt_messages_dropped",
            "MQTT messages or batches dropped at a full queue.",
            labels=["source", "queue"],
        )
        for msrc in gw.mqtt_sources:
            name = f"mqtt[{msrc.cfg.name}]"
            mqtt_dropped.add_metric([name, "inbound"], msrc.counters.dropped_inbound)
            mqtt_dropped.add_metric([name, "pipeline"], msrc.counters.dropped_batches)
        hj_frames = CounterMetricFamily(
            "emgate_hj212_frames", "HJ 212 frames accepted (CRC and length right).", labels=["source"]
        )
        hj_bad = CounterMetricFamily(
            "emgate_hj212_bad_frames",
            "HJ 212 frames rejected (no header, wrong length field, wrong CRC, not HJ 212), per peer address.",
            labels=["source", "peer"],
        )
        hj_closed = CounterMetricFamily(
            "emgate_hj212_connections_closed",
            "HJ 212 connections closed by the gateway: over max_connections, idle, or too slow.",
            labels=["source", "reason"],
        )
        for hsrc in gw.hj212_sources:
            name = f"hj212[{hsrc.cfg.name}]"
            hc = hsrc.counters
            hj_frames.add_metric([name], hc.frames)
            for peer, n in sorted(hc.bad_frames.items()):
                hj_bad.add_metric([name, peer], n)
            hj_closed.add_metric([name, "limit"], hc.rejected_connections)
            hj_closed.add_metric([name, "idle"], hc.idle_closed)
            hj_closed.add_metric([name, "slow"], hc.slow_closed)
        s7_requests = CounterMetricFamily(
            "emgate_s7_requests", "S7 read requests sent (each up to 20 items within the PDU).", labels=["source"]
        )
        s7_refused = CounterMetricFamily(
            "emgate_s7_refused_items",
            "S7 read items the PLC refused, by return code (0x0a no such object, 0x05 address out of range).",
            labels=["source", "code"],
        )
        s7_connects = CounterMetricFamily("emgate_s7_connects", "S7 connections made (setup and PDU agreed).", labels=["source"])
        for s7src in gw.s7_sources:
            name = f"s7[{s7src.cfg.name}]"
            sc = s7src.counters
            s7_requests.add_metric([name], sc.requests)
            s7_connects.add_metric([name], sc.connects)
            for code, n in sorted(sc.item_codes.items()):
                s7_refused.add_metric([name, f"{code:#04x}"], n)
            dropped.add_metric([name], sc.dropped_batches * len(s7src.cfg.points))
            missed.add_metric([name], sc.missed_polls)
        opcua_connects = CounterMetricFamily(
            "emgate_opcua_connects", "OPC UA sessions opened (subscription and items created).", labels=["source"]
        )
        opcua_changes = CounterMetricFamily(
            "emgate_opcua_node_state_changes",
            "OPC UA nodes going bad, unknown or uncertain, or good again (each logged once).",
            labels=["source"],
        )
        opcua_status = CounterMetricFamily(
            "emgate_opcua_samples_not_good", "OPC UA samples by StatusCode other than Good.", labels=["source", "status"]
        )
        for osrc in gw.opcua_sources:
            name = f"opcua[{osrc.cfg.name}]"
            oc = osrc.counters
            opcua_connects.add_metric([name], oc.connects)
            opcua_changes.add_metric([name], oc.node_state_changes)
            for status, n in sorted(oc.statuses.items()):
                opcua_status.add_metric([name, status], n)
        yield read
        yield late
        yield future
        yield dropped
        yield missed
        yield mqtt_dropped
        yield hj_frames
        yield hj_bad
        yield hj_closed
        yield s7_requests
        yield s7_refused
        yield s7_connects
        yield opcua_connects
        yield opcua_changes
        yield opcua_status
        yield CounterMetricFamily(
            "emgate_clock_steps",
            "Steps of the gateway's clock against its steady clock (beyond [window] clock_step_tolerance_s).",
            value=counters.clock_steps,
        )
        yield CounterMetricFamily(
            "emgate_samples_bad", "Readings that were not GOOD (comm, decode, range).", value=counters.bad
        )
        yield CounterMetricFamily(
            "emgate_samples_out_of_range",
            "Readings the minute window flagged: outside their signal's bounds, or not finite (never counted).",
            value=counters.out_of_range,
        )

        latency = HistogramMetricFamily(
            "emgate_poll_latency_seconds", "Time to read all blocks of one poll.", labels=["source"]
        )
        up = GaugeMetricFamily(
            "emgate_component_up",
            "1 while the component's last attempt succeeded.",
            labels=["kind", "source"],
        )
        errors = CounterMetricFamily(
            "emgate_component_errors", "Failed polls or connects.", labels=["kind", "source"]
        )
        last_good = GaugeMetricFamily(
            "emgate_component_last_good_timestamp_seconds",
            "Clock time of the last good poll.",
            labels=["kind", "source"],
        )
        for comp, h in sorted(gw.health.components.items()):
            kind, name = _source_of(comp)
            up.add_metric([kind, name], 1.0 if h.ok else 0.0)
            errors.add_metric([kind, name], h.errors)
            if h.last_good is not None:
                last_good.add_metric([kind, name], h.last_good)
            if h.latency_s is not None or any(h.latency_counts):
                cum, buckets = 0, []
                for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), h.latency_counts, strict=True):
                    cum += n
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), cum))
                latency.add_metric([name], buckets, sum_value=h.latency_sum_s)
        yield latency
        yield up
        yield errors
        yield last_good

        yield CounterMetricFamily(
            "emgate_minutes_closed", "Minutes closed by the minute window.", value=counters.minutes_closed
        )
        if self._history is not None:
            lag = self._history.close_lag
            yield SummaryMetricFamily(
                "emgate_minute_close_lag_seconds",
                "Delay from a minute's end to its results reaching the listeners.",
                count_value=lag.count,
                sum_value=lag.sum_s,
            )
            if lag.last_s is not None:
                yield GaugeMetricFamily(
                    "emgate_minute_close_lag_last_seconds",
                    "Close lag of the latest minute.",
                    value=lag.last_s,
                )
            today = GaugeMetricFamily(
                "emgate_co2_today_kg", "CO2 since local midnight, per process.", labels=["process"]
            )
            for process, kg in sorted(self._history.day_kg.items()):
                today.add_metric([process], kg)
            yield today

        influx = gw.influx
        backlog = influx.counters.backlog if influx is not None else 0
        yield GaugeMetricFamily(
            "emgate_outbox_backlog_rows", "Ledger rows not yet acknowledged by InfluxDB.", value=backlog
        )
        if influx is not None:
            yield CounterMetricFamily(
                "emgate_influx_points_written",
                "Points InfluxDB acknowledged.",
                value=influx.counters.points_written,
            )
            yield CounterMetricFamily(
                "emgate_influx_batches_failed",
                "Write batches that failed (retried).",
                value=influx.counters.batches_failed,
            )
        yield GaugeMetricFamily(
            "emgate_ledger_rows", "Rows in the ledger (head sequence number).", value=gw.ledger.head_seq
        )
        try:
            free = shutil.disk_usage(gw.ledger.path.resolve().parent).free
        except OSError:
            free = None
        if free is not None:
            yield GaugeMetricFamily(
                "emgate_ledger_disk_free_bytes", "Free space on the disk holding the ledger.", value=free
            )
        lc = gw.ledger.counters
        yield GaugeMetricFamily(
            "emgate_ledger_pending_results",
            "Results held in memory while the disk refuses writes.",
            value=lc.pending,
        )
        yield CounterMetricFamily(
            "emgate_ledger_write_failures",
            "Ledger writes that failed (retried).",
            value=lc.write_failures,
        )
        yield CounterMetricFamily(
            "emgate_ledger_corrections", "Correction rows appended.", value=lc.corrections
        )
        active = len(gw.alerts.active()) if gw.alerts is not None else 0
        yield GaugeMetricFamily("emgate_alerts_active", "Alerts currently active.", value=active)
        if gw.alerts is not None:
            yield from _deposit_metrics(gw.alerts.deposits)
        try:  # scraped from the event loop's thread (the aiohttp handler); elsewhere there are no tasks to count
            tasks: int | None = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = None
        if tasks is not None:
            yield GaugeMetricFamily("emgate_tasks", "asyncio tasks alive in the gateway's event loop.", value=tasks)
        if self._sse_clients is not None:
            yield GaugeMetricFamily(
                "emgate_status_page_clients", "Open status page event streams.", value=self._sse_clients()
            )


def _deposit_metrics(deposits: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
    """The watched months of the deposit clock (gateway/alerts/deposit.py), one sample each."""
    families = (
        ("emgate_deposit_days_left", "Days until the month's deposit is due (negative: overdue).", lambda d: d["days_left"]),
        ("emgate_deposit_open", "1 while the month's deposit is not complete.", lambda d: 1 if d["open"] else 0),
        (
            "emgate_deposit_default_fuel_minutes",
            "Minute rows of fuels needing a lab result computed on default factors.",
            lambda d: d["default_fuel_minutes"],
        ),
        (
            "emgate_deposit_low_coverage_minutes",
            "Substituted or missing minute rows of the month.",
            lambda d: d["low_coverage_minutes"],
        ),
        (
            "emgate_deposit_exported",
            "1 when an export as of the month's last change is recorded.",
            lambda d: 1 if d["export_current"] else 0,
        ),
    )
    for name, doc, value in families:
        family = GaugeMetricFamily(name, doc, labels=["month"])
        for d in deposits:
            family.add_metric([d["month"]], value(d))
        yield family


def gateway_registry(
    gw: GatewayView, history: MinuteHistory | None = None, sse_clients: Callable[[], int] | None = None
) -> CollectorRegistry:
    """A registry of its own (not the process-global one), holding only the gateway's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(gw, history, sse_clients))
    return registry
