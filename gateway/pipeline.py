"""The pipeline: `Gateway.build()` builds and wires every stage, sink and view; `run()` runs
them in one TaskGroup; `supervise()` is their restart policy.

    sources --SampleBatch--> queue --> MinuteStage --MinuteFrame--> EmissionCalculator
        --MinuteResults--> Ledger --cursor--> InfluxSink
                             \\-> AlertStage --alerts table--> AlertMqttSink
                                   ^-- deposit clock (the watched months, from the ledger, hourly)
                             \\-> MinuteHistory (status page, live table), ConsoleListener, listeners
                             \\-> DailySealer --seals table--> AlertMqttSink, InfluxSink (witnesses)

This module is the only one that wires. A stage, sink or view gets what it needs through its
constructor (the alert stage the InfluxDB backlog as a function, the MQTT sink the alert stage
as an AlertsView, the views the gateway as a GatewayView) and never reaches into the gateway
to attach itself; every part the gateway holds is a typed field.

Every task has a parent: a bug in any of them cancels the group and the service manager
restarts us, after every sink has flushed. Transient failures (a device or broker away) are
retried inside `supervise` with full-jitter backoff and never reach the group.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Self, TextIO

import numpy as np

from gateway.core.clock import Clock, ClockStep, SystemClock
from gateway.core.errors import TransientError
from gateway.core.health import ComponentHealth, HealthRegistry
from gateway.core.model import MinuteResults, SampleBatch
from gateway.core.signals import SignalTable
from gateway.ledger.checkpoint import Recovery, checkpoint_loop, recover_window, window_checkpoint
from gateway.ledger.evidence import EvidenceStore
from gateway.ledger.seals import SealStore
from gateway.ledger.store import Ledger
from gateway.settings.factors import factor_table_of
from gateway.settings.site import GatewaySettings, RetryConfig
from gateway.sinks.console import ConsoleListener
from gateway.sinks.influx import InfluxSink
from gateway.sources.modbus import ModbusSource
from gateway.sources.modbus_link import ModbusLinkPool
from gateway.stages.emissions import EmissionCalculator
from gateway.stages.minute import CLOCK_STEP_FLAG, MinuteFrame, MinuteStage, MinuteWindow
from gateway.stages.seal import DailySealer

# Imported where they are built, so that a site without them never loads them: the alert stage
# and its analytics (half a MB resident), the views (aiohttp, prometheus_client, rich), aiomqtt.
if TYPE_CHECKING:
    from rich.console import Console

    from gateway.alerts.budget_stage import AlertStage
    from gateway.http.history import MinuteHistory
    from gateway.http.server import StatusServer
    from gateway.http.terminal_table import LiveTable
    from gateway.sinks.alerts_mqtt import AlertMqttSink
    from gateway.sources.hj212 import Hj212Source
    from gateway.sources.mqtt import MqttSource
    from gateway.sources.opcua import OpcUaSource
    from gateway.sources.s7 import S7Source

log = logging.getLogger(__name__)


class MinuteListener(Protocol):
    """Takes the results of each closed frame (one minute live, a day in a replay) in the
    pipeline's task, after the ledger stored them."""

    def __call__(self, results: MinuteResults, /) -> None: ...


class Component(Protocol):
    """What `supervise` runs: connected on entry or raising, then run until cancelled."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def run(self) -> None: ...


def reenter(component: Component) -> Callable[[], Component]:
    """`supervise`'s factory for a component that is reusable, not reentrant: each attempt enters
    the same object again (it opens a new connection on entry)."""
    return lambda: component


def backoff_delay(retry: RetryConfig, attempt: int) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0.0, min(retry.cap_s, retry.base_s * 2 ** min(attempt, 30)))


async def supervise(make: Callable[[], Component], retry: RetryConfig, health: ComponentHealth, clock: Clock) -> None:
    """Enter and run a component forever, retrying transient failures with backoff.

    The backoff starts again from its base after a run that stayed up longer than the cap: a
    link that drops once a day must not wait as long as one that never came up.
    """
    attempt = 0
    while True:
        started = clock.now()
        try:
            async with make() as component:
                await component.run()
        except TransientError as exc:
            health.failed(str(exc))
            if clock.now() - started > retry.cap_s:
                attempt = 0
            delay = backoff_delay(retry, attempt)
            attempt += 1
            await clock.sleep_until(clock.now() + delay)
            continue
        return


class _Stop(Exception):
    """Raised inside the group to end a run that reached its minute limit."""


@dataclass
class Gateway:
    """The assembled pipeline. Build it with `Gateway.build(settings)`, add the views a command
    shows (`print_minutes`, `show_live_table`, `status_page`), then `await run()`.

    Each closed frame goes to the ledger, then to `listeners` (a caller's outputs: the replay's
    files, a test's recorder), the alert stage, the views' history and the console, in that order.
    """

    settings: GatewaySettings
    clock: Clock
    signals: SignalTable
    ledger: Ledger
    calculator: EmissionCalculator
    window: MinuteWindow
    health: HealthRegistry = field(default_factory=HealthRegistry)
    influx: InfluxSink | None = None  # [influx] enabled
    alerts: AlertStage | None = None  # [budget] or [alerts] enabled
    alert_publisher: AlertMqttSink | None = None  # [alerts.mqtt] set
    history: MinuteHistory | None = None  # what the status page and the live table show, once one is added
    console: ConsoleListener | None = None  # one line per closed minute
    terminal: LiveTable | None = None  # the live table on a terminal
    status: StatusServer | None = None  # the status page and /metrics, while `status_page()` serves them
    listeners: list[MinuteListener] = field(default_factory=list)
    sources: list[ModbusSource] = field(default_factory=list)
    mqtt_sources: list[MqttSource] = field(default_factory=list)
    opcua_sources: list[OpcUaSource] = field(default_factory=list)
    hj212_sources: list[Hj212Source] = field(default_factory=list)
    s7_sources: list[S7Source] = field(default_factory=list)
    minutes_closed: int = 0
    recovery: Recovery | None = None  # what startup restored from the ledger's checkpoint
    sealer: DailySealer | None = None  # seals the ledger's head when a site day has ended

    @classmethod
    def build(cls, settings: GatewaySettings, *, clock: Clock | None = None, exclusive: bool = True) -> Gateway:
        """Assemble the pipeline on the site's ledger.

        Raises LedgerSiteError when the ledger belongs to another site and, with `exclusive`
        (one gateway per ledger; a replay into a new file does without), LedgerInUseError
        while another gateway runs on it; SinkWriteError when it cannot be opened.
        """
        clock = clock or SystemClock()
        signals = SignalTable.from_settings(settings)
        factors = factor_table_of(settings.factors)
        calculator = EmissionCalculator(settings, factors)
        ledger = Ledger(settings.ledger.path, site=settings.site.name, exclusive=exclusive)
        sealer: DailySealer | None = None
        try:
            first = math.ceil(clock.now() / 60.0) * 60.0
            window = MinuteWindow(signals, settings.window, next_minute=first)
            gw = cls(settings, clock, signals, ledger, calculator, window)
            # lab results imported into this ledger (emgate lab import), even while we run
            calculator.attach_evidence(EvidenceStore(settings.ledger.path, readonly=True))
            gw.recovery = recover_window(ledger, window, clock.now())
            gw.sealer = sealer = DailySealer(SealStore(settings.ledger.path), settings.site.name, settings.site.timezone, clock.now)
            if settings.influx.enabled:
                gw.influx = InfluxSink(settings.influx, ledger, settings.retry, health=gw.health.get("influx"), clock=clock)
            if settings.budget is not None or settings.alerts.enabled:
                gw._add_alerts()
        except BaseException:
            if sealer is not None:
                sealer.close()
            calculator.close()
            ledger.close()  # and its lock: a caller in this process may build again
            raise
        return gw

    def _add_alerts(self) -> None:
        """The alert stage on the ledger's alerts table and, with [alerts.mqtt], its publisher."""
        from gateway.alerts.budget_stage import AlertStage
        from gateway.ledger.alerts_table import AlertStore

        s = self.settings
        influx = self.influx
        stage = AlertStage(
            s.site.name,
            s.site.timezone,
            s.budget,
            s.alerts,
            AlertStore(s.ledger.path),
            health=self.health,
            influx_backlog=(lambda: influx.counters.backlog) if influx is not None else None,
            disk_free_bytes=lambda: shutil.disk_usage(s.ledger.path.resolve().parent).free,
            ledger_pending=lambda: self.ledger.pending,
        )
        self.alerts = stage
        stage.restore(self.window.next_minute)
        if s.alerts.mqtt is not None:
            from gateway.sinks.alerts_mqtt import AlertMqttSink  # imports aiomqtt, only when configured

            seals = self.sealer.store if self.sealer is not None else None
            publisher = AlertMqttSink(s.alerts.mqtt, s.site.name, stage.store, stage, self.health.get("alerts-mqtt"), self.clock, seals)
            stage.notify = publisher.notify
            if self.sealer is not None:
                self.sealer.notify = publisher.notify
            self.alert_publisher = publisher

    # -- views: what a command shows of the running pipeline --------------------------------------
    def print_minutes(self, out: TextIO | None = None) -> None:
        """Print one line per closed minute (CO2 per process) on `out`, by default stdout."""
        self.console = ConsoleListener(self.settings.site.timezone, out)

    def show_live_table(self, console: Console | None = None) -> LiveTable:
        """Redraw the live table on the terminal while the pipeline runs."""
        from gateway.http.terminal_table import LiveTable  # imports rich

        self.terminal = LiveTable(self, self._view_history(), console=console)
        return self.terminal

    @asynccontextmanager
    async def status_page(self, bind: str | None) -> AsyncIterator[StatusServer | None]:
        """Serve the status page and /metrics at `bind` ("HOST:PORT") while the block runs; yields
        the StatusServer, or None when `bind` is None.

        The port is bound on entry, so a busy one raises ConfigError before the pipeline starts;
        the page's publisher runs in the pipeline's TaskGroup while `run()` runs inside the block.
        """
        if bind is None:
            yield None
            return
        from gateway.http.server import StatusServer  # imports aiohttp and prometheus_client

        async with StatusServer(self, bind, self._view_history()) as server:
            self.status = server
            try:
                yield server
            finally:
                self.status = None

    def _view_history(self) -> MinuteHistory:
        """The views' one MinuteHistory, seeded from the ledger when the first view asks for it."""
        if self.history is None:
            from gateway.http.history import MinuteHistory

            self.history = MinuteHistory(self.settings.site.timezone, self.clock)
            self.history.seed_from_ledger(self.ledger.path)
        return self.history

    # -- running ------------------------------------------------------------------------------------
    async def on_frame(self, frame: MinuteFrame) -> None:
        results = self.calculator.compute(frame)
        if self.recovery is not None:
            results = self.recovery.flag(results)
        if frame.clock_step is not None:  # minutes a step of the clock jumped over
            results = results.with_flag(CLOCK_STEP_FLAG, np.isin(results.minute_start, frame.starts[frame.clock_step]))
        # the window's state after this close is stored in the same transaction as its minutes
        self.ledger.append(results, checkpoint=window_checkpoint(self.window))
        if self.sealer is not None:
            self.sealer(results, self.ledger.head_seq, self.ledger.head_hash, self.ledger.pending)
        if self.influx is not None:
            self.influx.notify()
        self.announce(results)
        self.minutes_closed += len(frame.starts)

    def on_clock_step(self, step: ClockStep, consequence: str) -> None:
        """A step of the gateway's clock (the minute stage has logged it): the data_quality alert."""
        if self.alerts is not None:
            self.alerts.observe_clock_step(step, consequence)

    def announce(self, results: MinuteResults) -> None:
        """Hand stored results to the listeners, the alert stage, the views' history and the console."""
        for listener in self.listeners:
            listener(results)
        if self.alerts is not None:
            self.alerts(results)
        if self.history is not None:
            self.history(results)
        if self.console is not None:
            self.console(results)

    async def run(self, *, stop_after_minutes: int | None = None) -> None:
        """Run until cancelled, or until `stop_after_minutes` minutes have closed.

        Either way the stop is orderly: the window's state is saved and marked as a stop (the
        next start reports no crash), then InfluxDB gets what it has not acknowledged yet. A
        failure (a bug in a task) saves nothing more: the next start recovers as after a crash.
        """
        s = self.settings
        queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=s.pipeline.sample_buffer)
        stage = MinuteStage(
            self.window, queue, self._on_frame_checked(stop_after_minutes), self.clock, on_clock_step=self.on_clock_step
        )
        orderly = False  # stopped on request (cancelled: Ctrl-C, SIGTERM) or at the minute limit
        try:
            try:
                await self._run_group(stage, queue)
            except* _Stop:
                pass
            orderly = True
        except asyncio.CancelledError:
            orderly = True
            raise
        finally:
            if orderly:
                self._save_stop()
            await self._flush()

    async def _run_group(self, stage: MinuteStage, queue: asyncio.Queue[SampleBatch]) -> None:
        s = self.settings
        async with asyncio.TaskGroup() as tg:
            # devices on one serial port or host:port share one client and lock (modbus_link.py)
            links = ModbusLinkPool(s.retry)
            links.reserve_timeouts(list(s.modbus.devices))
            for dev in s.modbus.devices:
                h = self.health.get(f"modbus[{dev.name}]")
                src = ModbusSource(dev, self.signals, queue, self.clock, h, links=links, retry=s.retry)
                self.sources.append(src)
                tg.create_task(supervise(reenter(src), s.retry, h, self.clock), name=f"modbus[{dev.name}]")
            for broker in s.mqtt.brokers:  # one supervised task per broker, into the same queue
                from gateway.sources.mqtt import MqttSource  # here: a site without MQTT never loads aiomqtt

                hb = self.health.get(f"mqtt[{broker.name}]")
                msrc = MqttSource(broker, self.signals, queue, self.clock, hb, site=s.site.name)
                self.mqtt_sources.append(msrc)
                tg.create_task(supervise(reenter(msrc), s.retry, hb, self.clock), name=f"mqtt[{broker.name}]")
            for server in s.opcua.servers:  # one supervised session per server, into the same queue
                from gateway.sources.opcua import OpcUaSource  # here: a site without OPC UA never loads asyncua

                ho = self.health.get(f"opcua[{server.name}]")
                osrc = OpcUaSource(server, self.signals, queue, self.clock, ho)
                self.opcua_sources.append(osrc)
                tg.create_task(supervise(reenter(osrc), s.retry, ho, self.clock), name=f"opcua[{server.name}]")
            for hj_server in s.hj212.servers:  # one supervised listener per server, into the same queue
                from gateway.sources.hj212 import Hj212Source

                hh = self.health.get(f"hj212[{hj_server.name}]")
                hsrc = Hj212Source(hj_server, self.signals, queue, self.clock, hh, site_timezone=s.site.timezone)
                self.hj212_sources.append(hsrc)
                tg.create_task(supervise(reenter(hsrc), s.retry, hh, self.clock), name=f"hj212[{hj_server.name}]")
            for plc in s.s7.devices:  # one supervised connection per PLC, into the same queue
                from gateway.sources.s7 import S7Source  # here: a site without S7 never loads snap7

                h7 = self.health.get(f"s7[{plc.name}]")
                s7src = S7Source(plc, self.signals, queue, self.clock, h7, retry=s.retry)
                self.s7_sources.append(s7src)
                tg.create_task(supervise(reenter(s7src), s.retry, h7, self.clock), name=f"s7[{plc.name}]")
            tg.create_task(stage.run(), name="minute")
            checkpoints = checkpoint_loop(self.window, self.ledger, self.clock, s.ledger.checkpoint_s, lock=stage.lock)
            tg.create_task(checkpoints, name="checkpoint")
            if self.alert_publisher is not None:
                publisher = reenter(self.alert_publisher)
                tg.create_task(supervise(publisher, s.retry, self.health.get("alerts-mqtt"), self.clock), name="alerts-mqtt")
            if self.alerts is not None and s.alerts.deposit.enabled:
                from gateway.alerts.deposit import deposit_loop

                deposits = deposit_loop(self.alerts, s.ledger.path, s.site.timezone, s.alerts.deposit, self.clock)
                tg.create_task(deposits, name="deposit-clock")
            if self.terminal is not None:
                tg.create_task(self.terminal.run(), name="live-table")
            if self.status is not None:
                tg.create_task(self.status.run(), name="http")
            if self.influx is not None:
                tg.create_task(supervise(reenter(self.influx), s.retry, self.health.get("influx"), self.clock), name="influx")

    def _save_stop(self) -> None:
        """The window as it stands, marked as an orderly stop (CheckpointTable.mark_stopped): the readings
        since the last periodic checkpoint are kept, and the next start reports no crash."""
        try:
            saved = self.ledger.checkpoints.mark_stopped(window_checkpoint(self.window))
        except Exception:  # a bug here must not keep InfluxDB from its drain
            log.exception("ledger %s: the stop was not recorded", self.ledger.path)
            saved = False
        if not saved:
            log.warning("ledger %s: the stop was not recorded; the next start recovers from the last checkpoint", self.ledger.path)

    def _on_frame_checked(self, stop_after: int | None) -> Callable[[MinuteFrame], Awaitable[None]]:
        async def handle(frame: MinuteFrame) -> None:
            await self.on_frame(frame)
            if stop_after is not None and self.minutes_closed >= stop_after:
                raise _Stop

        return handle

    async def _flush(self, deadline_s: float = 15.0) -> None:
        """Deliver what the ledger holds past the InfluxDB cursor, within a deadline."""
        if self.influx is None:
            return
        try:
            async with asyncio.timeout(deadline_s):
                async with self.influx as sink:
                    while await sink.drain_once():
                        pass
        except Exception as exc:
            log.warning("influx: %d result(s) left for the next start (%s)", self.influx.counters.backlog, exc)

    def close(self) -> None:
        """Release files: the alert stage's connection to the alerts table, then the ledger and its lock."""
        if self.alerts is not None:
            self.alerts.close()
        if self.sealer is not None:
            self.sealer.close()
        self.calculator.close()
        self.ledger.close()
