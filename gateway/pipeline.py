"""run_gateway(): the pipeline's tasks in one TaskGroup, and supervise(): their restart policy.

    sources --SampleBatch--> queue --> MinuteStage --MinuteFrame--> EmissionCalculator
        --MinuteResult--> Ledger --cursor--> InfluxSink
                                 \\-> listeners (console, status page, alerts)

Every task has a parent: a bug in any of them cancels the group and the service manager
restarts us, after every sink has flushed. Transient failures (a device or broker away) are
retried inside `supervise` with full-jitter backoff and never reach the group.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway.core.clock import Clock, SystemClock
from gateway.core.errors import TransientError
from gateway.core.health import ComponentHealth, HealthRegistry
from gateway.core.model import MinuteResult, SampleBatch
from gateway.core.signals import SignalTable
from gateway.ledger.checkpoint import Recovery, checkpoint_loop, recover_window, window_checkpoint
from gateway.ledger.store import Ledger
from gateway.settings.factors import factor_table_of
from gateway.settings.site import GatewaySettings, RetryConfig
from gateway.sinks.influx import InfluxSink
from gateway.sources.modbus import ModbusSource
from gateway.sources.modbus_link import ModbusLinkPool
from gateway.stages.emissions import EmissionCalculator
from gateway.stages.minute import MinuteFrame, MinuteStage, MinuteWindow

if TYPE_CHECKING:
    from gateway.sources.mqtt import MqttSource

log = logging.getLogger(__name__)

ResultListener = Callable[[list[MinuteResult]], None]


class Component(Protocol):
    async def run(self) -> None: ...


def backoff_delay(retry: RetryConfig, attempt: int) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0.0, min(retry.cap_s, retry.base_s * 2 ** min(attempt, 30)))


async def supervise(make: Callable[[], AbstractAsyncContextManager[Any]], retry: RetryConfig,
                    health: ComponentHealth, clock: Clock) -> None:
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
    """The assembled pipeline. Build it with `Gateway.build(settings)`, then `await run()`."""

    settings: GatewaySettings
    clock: Clock
    signals: SignalTable
    ledger: Ledger
    calculator: EmissionCalculator
    window: MinuteWindow
    health: HealthRegistry = field(default_factory=HealthRegistry)
    listeners: list[ResultListener] = field(default_factory=list)
    influx: InfluxSink | None = None
    minutes_closed: int = 0
    sources: list[ModbusSource] = field(default_factory=list)
    mqtt_sources: list[MqttSource] = field(default_factory=list)
    # Extra coroutines (status page publisher, live table) run in the pipeline's TaskGroup, so a
    # bug in one cancels the group like any stage. Name one with a `task_name` attribute.
    extra_tasks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    recovery: Recovery | None = None  # what startup restored from the ledger's checkpoint

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
        try:
            first = math.ceil(clock.now() / 60.0) * 60.0
            window = MinuteWindow(signals, settings.window, next_minute=first)
            gw = cls(settings, clock, signals, ledger, calculator, window)
            gw.recovery = recover_window(ledger, window, clock.now())
            if settings.influx.enabled:
                gw.influx = InfluxSink(settings.influx, ledger, settings.retry)
            if settings.budget is not None or settings.alerts.enabled:
                # imported here, like MqttSource in run(): a site without alerts never loads them
                from gateway.alerts.budget_stage import attach_alerts

                attach_alerts(gw)  # a listener, plus the "alerts-mqtt" task when [alerts.mqtt] is set
        except BaseException:
            ledger.close()  # and its lock: a caller in this process may build again
            raise
        return gw

    async def on_frame(self, frame: MinuteFrame) -> None:
        results = self.calculator.compute(frame)
        if self.recovery is not None:
            results = self.recovery.flag(results)
        # the window's state after this close is stored in the same transaction as its minutes
        self.ledger.append(results, checkpoint=window_checkpoint(self.window))
        if self.influx is not None:
            self.influx.notify()
        for listener in self.listeners:
            listener(results)
        self.minutes_closed += len(frame.starts)

    async def run(self, *, stop_after_minutes: int | None = None) -> None:
        """Run until cancelled, or until `stop_after_minutes` minutes have closed.

        Either way the stop is orderly: the window's state is saved and marked as a stop (the
        next start reports no crash), then InfluxDB gets what it has not acknowledged yet. A
        failure (a bug in a task) saves nothing more: the next start recovers as after a crash.
        """
        s = self.settings
        queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=s.pipeline.sample_buffer)
        stage = MinuteStage(self.window, queue, self._on_frame_checked(stop_after_minutes), self.clock)
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
                tg.create_task(supervise(lambda src=src: src, s.retry, h, self.clock), name=f"modbus[{dev.name}]")
            for broker in s.mqtt.brokers:  # one supervised task per broker, into the same queue
                from gateway.sources.mqtt import MqttSource  # here: a site without MQTT never loads aiomqtt

                hb = self.health.get(f"mqtt[{broker.name}]")
                msrc = MqttSource(broker, self.signals, queue, self.clock, hb)
                self.mqtt_sources.append(msrc)
                tg.create_task(supervise(lambda msrc=msrc: msrc, s.retry, hb, self.clock), name=f"mqtt[{broker.name}]")
            tg.create_task(stage.run(), name="minute")
            checkpoints = checkpoint_loop(self.window, self.ledger, self.clock, s.ledger.checkpoint_s)
            tg.create_task(checkpoints, name="checkpoint")
            for i, make in enumerate(self.extra_tasks):
                tg.create_task(make(), name=getattr(make, "task_name", f"extra[{i}]"))  # type: ignore[arg-type]
            if self.influx is not None:
                influx = self.influx
                tg.create_task(supervise(lambda: influx, s.retry, self.health.get("influx"), self.clock), name="influx")

    def _save_stop(self) -> None:
        """The window as it stands, marked as an orderly stop (Ledger.mark_stopped): the readings
        since the last periodic checkpoint are kept, and the next start reports no crash."""
        try:
            saved = self.ledger.mark_stopped(window_checkpoint(self.window))
        except Exception:  # a bug here must not keep InfluxDB from its drain
            log.exception("ledger %s: the stop was not recorded", self.ledger.path)
            saved = False
        if not saved:
            log.warning("ledger %s: the stop was not recorded; the next start recovers from the last checkpoint", self.ledger.path)

    def _on_frame_checked(self, stop_after: int | None) -> Callable[[MinuteFrame], Any]:
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
        """Release files: listeners that hold one (the alert store) have a close() of their own."""
        for listener in self.listeners:
            close = getattr(listener, "close", None)
            if close is not None:
                close()
        self.ledger.close()
