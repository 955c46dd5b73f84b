"""Modbus links: one client and one lock per serial line or TCP connection, shared by devices.

A serial bus is one channel: two requests on it at once garble both, and a TCP gateway in
front of RTU slaves answers one request at a time. So every device on the same serial port,
or at the same transport + host:port, reads through ONE `ModbusLink`: one pymodbus client and
one FIFO lock, held for exactly one request. Holding it per request, not per poll, lets the
devices of a bus interleave fairly; a device's own backoff (in `ModbusSource`) keeps a dead
one from occupying the line.

The link owns connecting: a read on a closed link connects first, and failed connects are
spaced by full-jitter backoff (so twenty devices behind one dead gateway do not each try to
connect on every poll). A stream transport (TCP) that misses `RESET_AFTER_NO_REPLIES` replies
in a row is closed and reopened to resynchronise; a serial line is never closed for a silent
unit, because the other units on it are fine.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from gateway.core.errors import ConfigError
from gateway.settings.site import ModbusDeviceConfig, RetryConfig
from gateway.sources.pymodbus_client import ModbusClient, ModbusNoReply, RegisterKind

RESET_AFTER_NO_REPLIES = 3


def link_key(cfg: ModbusDeviceConfig) -> str:
    """Devices with the same key share one client and one lock."""
    if cfg.transport == "rtu":
        return f"serial:{cfg.serial_port}"
    return f"{cfg.transport}:{cfg.host}:{cfg.port}"


@dataclass
class LinkCounters:
    requests: int = 0
    no_replies: int = 0
    connects: int = 0
    connect_failures: int = 0
    resets: int = 0
    wait_s: float = 0.0  # total time requests waited for the lock (bus contention)


@dataclass
class ModbusLink:
    """One serial line or TCP connection; see the module docstring."""

    key: str
    client: ModbusClient
    retry: RetryConfig
    params: tuple[object, ...]
    users: set[str] = field(default_factory=set)
    counters: LinkCounters = field(default_factory=LinkCounters)

    def __post_init__(self) -> None:
        self._lock = asyncio.Lock()  # asyncio.Lock is FIFO: devices on a bus take turns
        self._connect_failures = 0
        self._next_connect = 0.0  # time.monotonic() before which no connect is attempted
        self._no_reply_run = 0

    @property
    def connected(self) -> bool:
        return self.client.connected

    @property
    def stream(self) -> bool:
        return self.client.transport != "rtu"

    async def ensure_connected(self) -> None:
        """Connect if needed (under the lock); raises ModbusNoReply while the peer is away."""
        async with self._lock:
            await self._connect_locked()

    async def _connect_locked(self) -> None:
        if self.client.connected:
            return
        wait = self._next_connect - time.monotonic()
        if wait > 0:
            raise ModbusNoReply(f"{self.client.endpoint}: link down, next connect attempt in {wait:.1f}s")
        try:
            await self.client.connect()
        except ModbusNoReply:
            self.counters.connect_failures += 1
            self._connect_failures += 1
            cap = min(self.retry.cap_s, self.retry.base_s * 2 ** min(self._connect_failures - 1, 30))
            self._next_connect = time.monotonic() + random.uniform(0.0, cap)
            self.client.close()
            raise
        self.counters.connects += 1
        self._connect_failures = 0
        self._no_reply_run = 0

    async def read(self, kind: RegisterKind, address: int, count: int, unit_id: int, timeout_s: float) -> list[int]:
        """One request, alone on the line. Raises ModbusNoReply or ModbusExceptionReply."""
        queued = time.perf_counter()
        async with self._lock:
            self.counters.wait_s += time.perf_counter() - queued
            if not self.client.connected:
                await self._connect_locked()
            self.counters.requests += 1
            try:
                words = await self.client.read(kind, address, count, unit_id, timeout_s=timeout_s)
            except ModbusNoReply:
                self.counters.no_replies += 1
                self._no_reply_run += 1
                if self.stream and self._no_reply_run >= RESET_AFTER_NO_REPLIES:
                    # late or garbled bytes may still be in flight: start a clean connection
                    self.counters.resets += 1
                    self._no_reply_run = 0
                    self.client.close()
                raise
            self._no_reply_run = 0
            return words

    def close(self) -> None:
        self.client.close()


class ModbusLinkPool:
    """Hands out the shared link of a device; closes a link when its last device leaves."""

    def __init__(self, retry: RetryConfig | None = None) -> None:
        self._retry = retry or RetryConfig()
        self._links: dict[str, ModbusLink] = {}
        self._timeouts: dict[str, float] = {}

    def links(self) -> list[ModbusLink]:
        return list(self._links.values())

    def acquire(self, cfg: ModbusDeviceConfig) -> ModbusLink:
        """The link for `cfg`, created on first use.

        Raises:
            ConfigError: another device on the same serial port uses other line settings.
        """
        key = link_key(cfg)
        params: tuple[object, ...] = (cfg.baudrate, cfg.parity, cfg.stopbits) if cfg.transport == "rtu" else ()
        link = self._links.get(key)
        if link is None:
            client = ModbusClient(
                transport=cfg.transport,
                host=cfg.host,
                port=cfg.port,
                serial_port=cfg.serial_port,
                baudrate=cfg.baudrate,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                timeout_s=self._link_timeout(key, cfg),
                endpoint=key.split(":", 1)[1],
            )
            link = self._links[key] = ModbusLink(key, client, self._retry, params)
        elif link.params != params:
            other = ", ".join(sorted(link.users)) or "another device"
            raise ConfigError(
                f"modbus device {cfg.name!r}: serial port {cfg.serial_port} is shared with {other} but "
                f"uses baudrate/parity/stopbits {params} instead of {link.params}; one line has one setting"
            )
        link.users.add(cfg.name)
        return link

    def release(self, cfg: ModbusDeviceConfig) -> None:
        key = link_key(cfg)
        link = self._links.get(key)
        if link is None:
            return
        link.users.discard(cfg.name)
        if not link.users:
            link.close()
            del self._links[key]

    def reserve_timeouts(self, devices: list[ModbusDeviceConfig]) -> None:
        """Tell the pool every device up front, so a shared client's timeout fits the slowest."""
        for cfg in devices:
            key = link_key(cfg)
            self._timeouts[key] = max(self._timeouts.get(key, 0.0), cfg.timeout_s)

    def _link_timeout(self, key: str, cfg: ModbusDeviceConfig) -> float:
        # requests use the device's own timeout; the client's (also its connect timeout) is the
        # slowest device's on the link, so no device's request is cut short by a neighbour's
        return max(self._timeouts.get(key, 0.0), cfg.timeout_s)
