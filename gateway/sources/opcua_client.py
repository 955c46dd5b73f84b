"""The one module that imports asyncua: a read-only OPC UA session for the OPC UA source and
for `emgate browse` / `emgate probe`.

What it sends: Hello, OpenSecureChannel, GetEndpoints, CreateSession, ActivateSession,
TranslateBrowsePathsToNodeIds, Read, Browse, CreateSubscription, CreateMonitoredItems,
Publish, DeleteSubscriptions, CloseSession. Never Write, Call, AddNodes, DeleteNodes or any
other service that changes the server: this module has no code path to them.

Errors of the link (refused, timed out, closed, a service refused as a whole) become
`OpcUaLinkError`; a node the server does not know is reported per node, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.subscription import Subscription
from asyncua.crypto import uacrypto
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

log = logging.getLogger(__name__)

# asyncua logs every reconnect and publish failure at WARNING or ERROR with a traceback; the
# source logs each state change once itself.
for _name in ("asyncua", "asyncua.client.ua_client", "asyncua.client.client", "asyncua.common.subscription"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

GOOD, UNCERTAIN, BAD = "good", "uncertain", "bad"
BAD_NODE_ID_UNKNOWN = int(ua.StatusCodes.BadNodeIdUnknown)
BAD_COMMUNICATION_ERROR = int(ua.StatusCodes.BadCommunicationError)
BAD_TYPE_MISMATCH = int(ua.StatusCodes.BadTypeMismatch)
_STATUS_NAMES = {int(v): k for k, v in vars(ua.StatusCodes).items() if isinstance(v, int) and not k.startswith("_")}


class OpcUaLinkError(Exception):
    """The session is unusable: connect refused, timed out, closed, or a service refused whole."""


def status_severity(code: int) -> str:
    """Good, uncertain or bad, from the StatusCode's two severity bits (Part 4, 7.34.1)."""
    severity = (code >> 30) & 0b11
    return GOOD if severity == 0 else UNCERTAIN if severity == 1 else BAD


def status_name(code: int) -> str:
    """'BadNodeIdUnknown' for 0x80340000; the hex code for one asyncua does not name."""
    return _STATUS_NAMES.get(code & 0xFFFF0000, f"0x{code:08X}")


def numeric(value: Any) -> float | None:
    """A scalar numeric or Boolean value as a float (True -> 1.0); None for anything else."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None


def _epoch(ts: datetime | None) -> float | None:
    if ts is None:
        return None
    epoch = ts.timestamp()
    return epoch if epoch > 0 else None  # DateTime MinValue (1601) means "not set"


@dataclass(frozen=True, slots=True)
class NodeReading:
    """One DataValue: the node's slot (index in the configured list), its value as a float (NaN
    when there is none or it is not numeric), the StatusCode and both timestamps."""

    slot: int
    value: float
    status: int
    source_ts: float | None
    server_ts: float | None


def reading_of(slot: int, dv: ua.DataValue) -> NodeReading:
    status = int(dv.StatusCode_.value) if dv.StatusCode_ is not None else 0
    raw = dv.Value.Value if dv.Value is not None else None
    value = numeric(raw)
    if value is None:
        value = math.nan
        if status_severity(status) != BAD:  # a string, an array, a structure: not a number
            status = BAD_TYPE_MISMATCH
    return NodeReading(slot, value, status, _epoch(dv.SourceTimestamp), _epoch(dv.ServerTimestamp))


@dataclass(frozen=True)
class Security:
    """Basic256Sha256 with `mode` ('Sign' or 'SignAndEncrypt') and these files; None for no security."""

    mode: str
    certificate: Path
    private_key: Path
    server_certificate: Path | None  # the one server certificate trusted, or
    trust_dir: Path | None = None  # a directory of trusted server certificates


@dataclass(frozen=True, slots=True)
class BrowseRow:
    depth: int
    node_id: str
    browse_name: str
    node_class: str
    data_type: str  # variables only, else ""
    value: str  # variables only, else ""


class _Handler:
    """asyncua's subscription handler: collects notifications for the source to drain."""

    def __init__(self, slots: dict[int, int], wake: Callable[[], None]) -> None:
        self.slots = slots  # client handle -> slot
        self.pending: list[NodeReading] = []
        self.status_change: int | None = None
        self._wake = wake

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        item = data.monitored_item
        slot = self.slots.get(item.ClientHandle)
        if slot is not None:
            self.pending.append(reading_of(slot, item.Value))
            self._wake()

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        self.status_change = int(status.Status.value)
        self._wake()


class OpcUaSession:
    """One connection to one server. Open with `open()`, always `close()`.

    `lost` is set (with `lost_reason`) when asyncua's keep-alive watchdog or the publish loop
    finds the server gone; `changed` is set when notifications are waiting in `drain()`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        watchdog_s: float,
        security: Security | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url
        self._client = Client(url, timeout=timeout_s, watchdog_intervall=watchdog_s)
        self._client.name = self._client.description = "emgate"
        self._client.application_uri = "urn:emgate:client"
        self._client.session_timeout = max(30_000, int(watchdog_s * 10_000))
        self._client.connection_lost_callback = self._on_lost
        self._security, self._username, self._password = security, username, password
        self._timeout_s = timeout_s
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self.changed = asyncio.Event()
        self._sub: Subscription | None = None
        self._handler: _Handler | None = None
        self._open = False

    async def _on_lost(self, exc: Exception) -> None:
        self.lost_reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.lost.set()

    async def open(self) -> None:
        client = self._client
        try:
            if self._security is not None:
                uri = await _application_uri(self._security.certificate)
                if uri:  # the session's application URI must be the one the certificate names
                    client.application_uri = uri
                mode = ua.MessageSecurityMode.Sign if self._security.mode == "Sign" else ua.MessageSecurityMode.SignAndEncrypt
                pinned = self._security.server_certificate
                if pinned is None and self._security.trust_dir is not None:
                    client.certificate_validator = _TrustList(self._security.trust_dir)
                await client.set_security(
                    SecurityPolicyBasic256Sha256,
                    str(self._security.certificate),
                    str(self._security.private_key),
                    server_certificate=str(pinned) if pinned is not None else None,
                    mode=mode,
                )
            if self._username:
                client.set_user(self._username)
                client.set_password(self._password or "")
            async with asyncio.timeout(self._timeout_s * 3):
                await client.connect()
        except (OSError, TimeoutError, ua.UaError, ValueError, EOFError) as exc:
            await self.close()
            raise OpcUaLinkError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        self._open = True

    async def close(self) -> None:
        self._open = False
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._client.disconnect()
        except Exception:  # the link is already gone; nothing is left to release
            try:
                self._client.uaclient.disconnect_socket()
            except Exception:
                pass

    async def resolve(self, specs: Sequence[str]) -> list[ua.NodeId | int]:
        """Each spec as a NodeId, or the StatusCode that says why not (BadNodeIdUnknown, ...).

        Browse paths are translated in one TranslateBrowsePathsToNodeIds from the Objects
        folder; NodeId strings are parsed here and checked by the first Read or subscription.
        """
        out: list[ua.NodeId | int] = [0] * len(specs)
        paths: list[tuple[int, str]] = []
        for i, spec in enumerate(specs):
            if spec.startswith("/"):
                paths.append((i, spec))
            else:
                out[i] = ua.NodeId.from_string(spec)
        if paths:
            rels = [_relative_path(spec) for _, spec in paths]
            results = await self._call(self._client.translate_browsepaths(ua.NodeId(ua.ObjectIds.RootFolder), rels))
            for (i, _), res in zip(paths, results, strict=True):
                code = int(res.StatusCode.value)
                if status_severity(code) == GOOD and res.Targets:
                    target = res.Targets[0].TargetId
                    out[i] = ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
                else:
                    out[i] = code or BAD_NODE_ID_UNKNOWN
        return out

    async def read(self, slots: Sequence[int], node_ids: Sequence[ua.NodeId]) -> list[NodeReading]:
        """One Read of the Value attribute of every node, both timestamps returned."""
        params = ua.ReadParameters()
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        for nid in node_ids:
            rv = ua.ReadValueId()
            rv.NodeId = nid
            rv.AttributeId = ua.AttributeIds.Value
            params.NodesToRead.append(rv)
        results = await self._call(self._client.uaclient.read(params))
        return [reading_of(slot, dv) for slot, dv in zip(slots, results, strict=True)]

    async def subscribe(self, publishing_interval_ms: float) -> None:
        """Create the one subscription this session's monitored items go into."""
        self._handler = _Handler({}, self.changed.set)
        self._sub = await self._call(self._client.create_subscription(publishing_interval_ms, self._handler))

    async def monitor(
        self, slots: Sequence[int], node_ids: Sequence[ua.NodeId], *, sampling_interval_ms: float, queue_size: int
    ) -> list[int]:
        """Add monitored items for these nodes; per node 0 (created) or the StatusCode refusing it."""
        assert self._sub is not None and self._handler is not None, "subscribe() first"
        requests = []
        for slot, nid in zip(slots, node_ids, strict=True):
            req = self._sub._make_monitored_item_request(
                Node(self._client.uaclient, nid),
                ua.AttributeIds.Value,
                None,
                queue_size,
                ua.MonitoringMode.Reporting,
                sampling_interval_ms,
            )
            self._handler.slots[req.RequestedParameters.ClientHandle] = slot
            requests.append(req)
        results = await self._call(self._sub.create_monitored_items(requests))
        return [int(r.value) if isinstance(r, ua.StatusCode) else 0 for r in results]

    def drain(self) -> tuple[list[NodeReading], int | None]:
        """The notifications received since the last drain, and a subscription status change."""
        self.changed.clear()
        if self._handler is None:
            return [], None
        pending, self._handler.pending = self._handler.pending, []
        status, self._handler.status_change = self._handler.status_change, None
        return pending, status

    async def check(self) -> None:
        """Raise OpcUaLinkError if asyncua's keep-alive or publish loop has found the server gone."""
        try:
            await self._client.check_connection()
        except Exception as exc:
            raise OpcUaLinkError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        if self.lost.is_set():
            raise OpcUaLinkError(self.lost_reason or "connection lost")

    async def browse(self, spec: str | None, depth: int) -> list[BrowseRow]:
        """The tree under `spec` (default the Objects folder), `depth` levels deep."""
        start: ua.NodeId | int = ua.NodeId(ua.ObjectIds.ObjectsFolder) if spec is None else (await self.resolve([spec]))[0]
        if isinstance(start, int):
            raise OpcUaLinkError(f"node {spec!r}: {status_name(start)}")
        rows: list[BrowseRow] = []
        await self._browse_into(self._client.get_node(start), 0, depth, rows)
        return rows

    async def _browse_into(self, node: Node, level: int, depth: int, rows: list[BrowseRow]) -> None:
        name = await self._call(node.read_browse_name())
        node_class = await self._call(node.read_node_class())
        data_type = value = ""
        if node_class == ua.NodeClass.Variable:
            dt = await self._call(node.read_data_type())
            data_type = await self._type_name(dt)
            dv = await self._call(node.read_data_value(raise_on_bad_status=False))
            code = int(dv.StatusCode_.value) if dv.StatusCode_ is not None else 0
            value = repr(dv.Value.Value) if dv.Value is not None and status_severity(code) != BAD else status_name(code)
        rows.append(BrowseRow(level, node.nodeid.to_string(), name.to_string(), node_class.name, data_type, value))
        if level >= depth:
            return
        for child in await self._call(node.get_children()):
            await self._browse_into(child, level + 1, depth, rows)

    async def _type_name(self, dt: ua.NodeId) -> str:
        if dt.NamespaceIndex == 0 and isinstance(dt.Identifier, int):
            name = ua.ObjectIdNames.get(dt.Identifier)
            if name:
                return str(name)
        return str(dt.to_string())

    async def _call(self, awaitable: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                return await awaitable
        except (OSError, TimeoutError, ua.UaError, EOFError, asyncio.InvalidStateError) as exc:
            raise OpcUaLinkError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc


class _TrustList:
    """asyncua's certificate validator: the server's certificate must be, byte for byte, one of
    the certificates in `directory` (*.der, *.pem, *.crt), and valid today. Called in
    CreateSession, before ActivateSession sends any password."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def __call__(self, cert: x509.Certificate, app: Any) -> None:
        der = cert.public_bytes(Encoding.DER)
        trusted = []
        for path in sorted(self.directory.glob("*")):
            if path.suffix.lower() in (".der", ".pem", ".crt"):
                trusted.append((await uacrypto.load_certificate(str(path))).public_bytes(Encoding.DER))
        if der not in trusted:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUntrusted)
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadCertificateTimeInvalid)


async def _application_uri(certificate: Path) -> str | None:
    """The URI in the certificate's subjectAltName, which servers check against the session's."""
    cert = await uacrypto.load_certificate(str(certificate))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uris[0]) if uris else None


def _relative_path(spec: str) -> str:
    """'/0:Objects/2:Plant/2:Flow' -> asyncua's relative path text '/0:Objects/2:Plant/2:Flow'."""
    return "/" + "/".join(p for p in spec.split("/") if p)


def parse_node_id(spec: str) -> ua.NodeId:
    """A NodeId string as a NodeId (raises ValueError naming it)."""
    try:
        return ua.NodeId.from_string(spec)
    except Exception as exc:
        raise ValueError(f"node {spec!r} is not a NodeId: {exc}") from None
