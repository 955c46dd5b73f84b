"""GatewayView: what the status page, the live table and /metrics read of the running gateway.

gateway.pipeline.Gateway satisfies it; the views take it in their constructor and never import
the pipeline (the pipeline imports them). Every member is a counter or a state the component
keeps anyway, so a view reads numbers at its own pace and nothing is recorded for it on the hot
path. A test hands the views a stand-in with these attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.alerts.model import AlertsView
    from gateway.core.clock import Clock
    from gateway.core.health import HealthRegistry
    from gateway.ledger.store import LedgerCounters
    from gateway.settings.hj212 import Hj212ServerConfig
    from gateway.settings.opcua import OpcUaServerConfig
    from gateway.settings.s7 import S7DeviceConfig
    from gateway.settings.site import GatewaySettings, ModbusDeviceConfig, MqttBrokerConfig
    from gateway.sinks.influx import InfluxCounters
    from gateway.sources.hj212 import Hj212Counters
    from gateway.sources.modbus import ModbusCounters
    from gateway.sources.mqtt import MqttCounters
    from gateway.sources.opcua import OpcUaCounters
    from gateway.sources.s7 import S7Counters
    from gateway.stages.minute import WindowCounters


class WindowView(Protocol):
    @property
    def counters(self) -> WindowCounters: ...


class LedgerView(Protocol):
    @property
    def head_seq(self) -> int: ...

    @property
    def path(self) -> Path: ...

    @property
    def counters(self) -> LedgerCounters: ...


class InfluxView(Protocol):
    @property
    def counters(self) -> InfluxCounters: ...


class ModbusSourceView(Protocol):
    @property
    def cfg(self) -> ModbusDeviceConfig: ...

    @property
    def counters(self) -> ModbusCounters: ...


class MqttSourceView(Protocol):
    @property
    def cfg(self) -> MqttBrokerConfig: ...

    @property
    def counters(self) -> MqttCounters: ...


class Hj212SourceView(Protocol):
    @property
    def cfg(self) -> Hj212ServerConfig: ...

    @property
    def counters(self) -> Hj212Counters: ...


class S7SourceView(Protocol):
    @property
    def cfg(self) -> S7DeviceConfig: ...

    @property
    def counters(self) -> S7Counters: ...


class OpcUaSourceView(Protocol):
    @property
    def cfg(self) -> OpcUaServerConfig: ...

    @property
    def counters(self) -> OpcUaCounters: ...


class GatewayView(Protocol):
    """The gateway as its views see it: read-only, read when a page or a scrape asks."""

    @property
    def settings(self) -> GatewaySettings: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def health(self) -> HealthRegistry: ...

    @property
    def window(self) -> WindowView: ...

    @property
    def ledger(self) -> LedgerView: ...

    @property
    def influx(self) -> InfluxView | None: ...

    @property
    def alerts(self) -> AlertsView | None:
        """The alert stage; None when the site configures neither [budget] nor [alerts]."""
        ...

    @property
    def sources(self) -> Sequence[ModbusSourceView]: ...

    @property
    def mqtt_sources(self) -> Sequence[MqttSourceView]: ...

    @property
    def hj212_sources(self) -> Sequence[Hj212SourceView]: ...

    @property
    def s7_sources(self) -> Sequence[S7SourceView]: ...

    @property
    def opcua_sources(self) -> Sequence[OpcUaSourceView]: ...
