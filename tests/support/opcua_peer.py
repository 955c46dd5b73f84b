"""An OPC UA peer for the tests: asyncua's own server on 127.0.0.1, in the test's event loop.

`OpcUaPeer` holds a namespace with one variable of every scalar numeric type and a Boolean
under Objects/Plant, plus a string (not a number) and nodes whose status the test sets. It can
stop and start again on the same port (a server restart), remove and re-add its variables (an
address-space reload), and it records the services it receives (`services`): the test checks
that the gateway never sends Write or Call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.server.uaprocessor import UaProcessor
from asyncua.server.user_managers import UserManager

from gateway.core.clock import SystemClock
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.sources.opcua import OpcUaSource
from tests.factories import site_settings

NS_URI = "urn:emgate:test:plant"
for _name in ("asyncua",):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

# name -> (VariantType, initial value): every scalar numeric type and Boolean
TYPES: dict[str, tuple[ua.VariantType, Any]] = {
    "Boolean": (ua.VariantType.Boolean, True),
    "SByte": (ua.VariantType.SByte, -5),
    "Byte": (ua.VariantType.Byte, 250),
    "Int16": (ua.VariantType.Int16, -30000),
    "UInt16": (ua.VariantType.UInt16, 65000),
    "Int32": (ua.VariantType.Int32, -2_000_000_000),
    "UInt32": (ua.VariantType.UInt32, 4_000_000_000),
    "Int64": (ua.VariantType.Int64, -9_000_000_000_000),
    "UInt64": (ua.VariantType.UInt64, 18_000_000_000_000),
    "Float": (ua.VariantType.Float, 1.5),
    "Double": (ua.VariantType.Double, 12345.678),
}

_RECORDING: list[list[str]] = []  # the service lists of the peers that record
_original_process = UaProcessor._process_message


async def _recording_process(self: UaProcessor, typeid: ua.NodeId, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
    name = ua.ObjectIdNames.get(typeid.Identifier, str(typeid)) if isinstance(typeid.Identifier, int) else str(typeid)
    for services in _RECORDING:
        services.append(str(name).removesuffix("_Encoding_DefaultBinary"))
    return await _original_process(self, typeid, requesthdr, seqhdr, body)


UaProcessor._process_message = _recording_process  # type: ignore[method-assign]


class _Users(UserManager):
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None) -> Any:
        from asyncua.server.users import User, UserRole

        if username is None and not self.users:
            return User(role=UserRole.User)
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User)
        return None


@dataclass
class OpcUaPeer:
    port: int
    security: list[ua.SecurityPolicyType] = field(default_factory=lambda: [ua.SecurityPolicyType.NoSecurity])
    certificate: Path | None = None
    private_key: Path | None = None
    users: dict[str, str] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)
    server: Server | None = None
    ns: int = 2
    nodes: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/emgate/"

    async def start(self, *, with_variables: bool = True) -> None:
        server = Server(user_manager=_Users(self.users)) if self.users else Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("emgate test peer")
        server.set_security_policy(self.security)
        if self.users:
            server.set_security_IDs(["Username"])
        if self.certificate is not None and self.private_key is not None:
            await server.load_certificate(str(self.certificate))
            await server.load_private_key(str(self.private_key))
        self.ns = await server.register_namespace(NS_URI)
        self.server = server
        if with_variables:
            await self.add_variables()
        await server.start()
        if self.services not in _RECORDING:
            _RECORDING.append(self.services)

    async def add_variables(self) -> None:
        assert self.server is not None
        ns = self.ns
        plant = await self.server.nodes.objects.add_folder(ua.NodeId("Plant", ns), ua.QualifiedName("Plant", ns))
        self.nodes = {"Plant": plant}
        for name, (vtype, value) in TYPES.items():
            self.nodes[name] = await plant.add_variable(ua.NodeId(name, ns), ua.QualifiedName(name, ns), value, varianttype=vtype)
        self.nodes["Text"] = await plant.add_variable(ua.NodeId("Text", ns), ua.QualifiedName("Text", ns), "hello")
        self.nodes["Flow"] = await plant.add_variable(
            ua.NodeId(1001, ns), ua.QualifiedName("Flow", ns), 10.0, varianttype=ua.VariantType.Double
        )

    async def remove_variables(self) -> None:
        assert self.server is not None
        await self.server.delete_nodes([self.nodes["Plant"]], recursive=True)
        self.nodes = {}

    async def set(self, name: str, value: Any, status: int = 0, source_ts: float | None = None) -> None:
        """Change a value (its StatusCode, its SourceTimestamp) on the server side, in the peer's own
        address space: nothing goes over the wire."""
        node = self.nodes[name]
        vtype = TYPES[name][0] if name in TYPES else ua.VariantType.Double
        stamp = datetime.fromtimestamp(source_ts, UTC) if source_ts is not None else None
        dv = ua.DataValue(ua.Variant(value, vtype), StatusCode_=ua.StatusCode(status), SourceTimestamp=stamp)
        await self.server.write_attribute_value(node.nodeid, dv)  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def forget(self) -> None:
        if self.services in _RECORDING:
            _RECORDING.remove(self.services)


class StallingProxy:
    """A TCP relay on 127.0.0.1 that can stall: while `stalled`, bytes are held, not forwarded,
    and the connections stay open (a network that stops delivering without closing anything)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.close()

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    @stalled.setter
    def stalled(self, value: bool) -> None:
        if value:
            self._flowing.clear()
        else:
            self._flowing.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            w.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- what the source's tests share: a source on the peer and the samples it delivers -------------

GOOD = int(SampleQuality.GOOD)


def make(server: dict[str, Any], nodes: dict[str, str]) -> tuple[OpcUaSource, asyncio.Queue[SampleBatch], SignalTable]:
    settings = site_settings(
        "t",
        signals={signal: {"unit": "t/h"} for signal in nodes.values()},
        opcua={"servers": [{"name": "dcs", **server, "nodes": [{"node": n, "signal": s} for n, s in nodes.items()]}]},
    )
    signals = SignalTable.from_settings(settings)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=1000)
    src = OpcUaSource(settings.opcua.servers[0], signals, queue, SystemClock(), ComponentHealth("opcua[dcs]"))
    return src, queue, signals


async def collect(
    queue: asyncio.Queue[SampleBatch], signals: SignalTable, until: Any, timeout_s: float = 15.0
) -> list[tuple[str, float, int, float]]:
    """Samples (signal, value, quality, ts) until `until(samples)` is true."""
    out: list[tuple[str, float, int, float]] = []
    async with asyncio.timeout(timeout_s):
        while not until(out):
            batch = await queue.get()
            out += [
                (signals.names[i], v, q, t)
                for i, v, q, t in zip(
                    batch.signal_ids, batch.values.tolist(), batch.quality.tolist(), batch.ts.tolist(), strict=True
                )
            ]
    return out


def latest(samples: list[tuple[str, float, int, float]]) -> dict[str, tuple[float, int]]:
    return {s: (v, q) for s, v, q, _ in samples}
