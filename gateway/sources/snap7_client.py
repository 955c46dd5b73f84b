"""The one module that imports python-snap7 (pinned to 3.3.x in pyproject.toml).

python-snap7 3 is a pure-Python rewrite of the library (2.x wrapped the C snap7), and its async
client's `read_multi_vars` sends one request per item. So the gateway uses only its connection
handshake (`AsyncISOTCPConnection.connect`: TCP, then COTP with the TSAPs) and its request
builders (`S7Protocol`), and frames (TPKT + COTP DT), sends and parses the two PDUs it needs
itself, on the connection's stream:

- Setup Communication, to agree the PDU size (the read planner packs requests within it);
- Read Var with up to 20 items, whose reply carries a return code per item, so an item the PLC
  refuses (a DB that does not exist, a range past its end) costs that item's points, not the
  request's.

Own framing because snap7's `receive_data` wraps each of its two stream reads in
`asyncio.wait_for` (a task each on Python 3.11): a quarter of a poll's time in bench/s7.py. Here
one `asyncio.timeout` bounds the whole exchange.

There is no write, control or block service here, by design: emgate never writes to a PLC.

Errors are translated once, here: no reply, a lost link or a malformed reply -> `S7NoReply`
(transient: the source reconnects with backoff); a PDU with an error class -> `S7NoReply` as
well, with the class and code. A refused item is not an exception: `S7Client.read` returns its
return code in place of its bytes.

`S7Server` (python-snap7's server on loopback, with the function codes it received) is for the
simulated plant, the tests and the bench.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Mapping, Sequence

from snap7.async_client import AsyncISOTCPConnection
from snap7.error import S7Error
from snap7.s7protocol import S7Protocol, get_return_code_description
from snap7.server import Server as _Snap7Server
from snap7.type import SrvArea

from gateway.core.errors import TransientError

# snap7 logs every connect, disconnect and refused item at INFO/WARNING; the source reports state
# changes itself.
logging.getLogger("snap7").setLevel(logging.ERROR)

#: S7 area codes of the address spec (S7Area in snap7.datatypes).
AREA_CODES: dict[str, int] = {"I": 0x81, "Q": 0x82, "M": 0x83, "DB": 0x84}
_SERVER_AREAS: dict[str, SrvArea] = {"I": SrvArea.PE, "Q": SrvArea.PA, "M": SrvArea.MK, "DB": SrvArea.DB}
_ACK_DATA = 0x03
_READ_VAR = 0x04
_SETUP = 0xF0
ITEM_OK = 0xFF

ReadItem = tuple[str, int, int, int]  # area (DB, M, I, Q), DB number (0 outside DB), first byte, bytes


class S7NoReply(TransientError):
    """No (valid) reply: refused connect, timeout, connection lost, malformed or error PDU."""


def return_code_text(code: int) -> str:
    """What an item's return code means (0x0A: object does not exist, 0x05: address out of range)."""
    return str(get_return_code_description(code))


class S7Client:
    """A read-only S7comm client for one PLC connection."""

    def __init__(
        self,
        host: str,
        *,
        port: int = 102,
        rack: int = 0,
        slot: int = 1,
        local_tsap: int | None = None,
        remote_tsap: int | None = None,
        pdu_bytes: int = 960,
        timeout_s: float = 2.0,
        endpoint: str = "",
    ) -> None:
        self.host, self.port = host, port
        self.endpoint = endpoint or f"s7 {host}:{port}"
        self.local_tsap = 0x0100 if local_tsap is None else local_tsap
        # PG connection type (1) to the CPU at rack/slot, as snap7's Client.connect computes it
        self.remote_tsap = (1 << 8) | (rack << 5) | slot if remote_tsap is None else remote_tsap
        self._asked_pdu = pdu_bytes
        self.pdu_bytes = 0  # agreed at connect
        self._timeout_s = timeout_s
        self._protocol = S7Protocol()
        self._conn: AsyncISOTCPConnection | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._built: dict[tuple[ReadItem, ...], bytearray] = {}  # a poll's requests, built once
        self._sequence = 0

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Open ISO-on-TCP and agree the PDU size, or raise S7NoReply."""
        await self.close()
        conn = AsyncISOTCPConnection(self.host, self.port, local_tsap=self.local_tsap, remote_tsap=self.remote_tsap)
        try:
            async with asyncio.timeout(self._timeout_s):
                await conn.connect(timeout=self._timeout_s)
                self._conn = conn
                # the stream snap7 opened (private in 3.3.x, hence the exact pin): framed here, see above
                self._reader, self._writer = conn._reader, conn._writer
                request = self._protocol.build_setup_communication_request(
                    max_amq_caller=1, max_amq_callee=1, pdu_length=self._asked_pdu
                )
                reply = await self._exchange(request, "setup communication")
        except TimeoutError as exc:
            await self.close(conn)
            raise S7NoReply(f"{self.endpoint}: connect did not finish within {self._timeout_s}s") from exc
        except (S7Error, OSError) as exc:
            await self.close(conn)
            raise S7NoReply(f"{self.endpoint}: connect failed: {exc}") from exc
        except S7NoReply:
            await self.close(conn)
            raise
        if len(reply) < 20 or reply[12] != _SETUP:
            await self.close(conn)
            raise S7NoReply(f"{self.endpoint}: malformed setup-communication reply ({len(reply)} bytes)")
        agreed = struct.unpack_from(">H", reply, 18)[0]
        if agreed < 64:
            await self.close(conn)
            raise S7NoReply(f"{self.endpoint}: PLC agreed an implausible PDU size of {agreed} bytes")
        self.pdu_bytes = min(agreed, self._asked_pdu)

    async def close(self, conn: AsyncISOTCPConnection | None = None) -> None:
        conn = conn or self._conn
        if conn is self._conn:
            self._conn = self._reader = self._writer = None
        if conn is not None:
            try:
                async with asyncio.timeout(1.0):
                    await conn.disconnect()
            except (TimeoutError, S7Error, OSError):
                pass  # the connection is gone either way

    async def _exchange(self, request: bytes | bytearray, what: str) -> bytes:
        """Send one job PDU and return its ACK_DATA reply (header checked)."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise S7NoReply(f"{self.endpoint}: not connected")
        # TPKT (version 3, length) + COTP DT (length 2, 0xF0, last data unit) + the S7 PDU
        writer.write(struct.pack(">BBHBBB", 3, 0, len(request) + 7, 2, 0xF0, 0x80) + request)
        await writer.drain()
        try:
            head = await reader.readexactly(4)
            version, _, length = struct.unpack(">BBH", head)
            if version != 3 or length < 7:
                raise S7NoReply(f"{self.endpoint}: {what}: not an ISO-on-TCP frame ({head.hex()})")
            frame = await reader.readexactly(length - 4)
        except asyncio.IncompleteReadError as exc:
            raise S7NoReply(f"{self.endpoint}: {what}: the PLC closed the connection") from exc
        if frame[0] != 2 or frame[1] != 0xF0:
            raise S7NoReply(f"{self.endpoint}: {what}: not a COTP data frame ({frame[:3].hex()})")
        reply = frame[3:]
        if len(reply) < 12 or reply[0] != 0x32 or reply[1] != _ACK_DATA:
            raise S7NoReply(f"{self.endpoint}: {what}: malformed reply ({reply[:12].hex()})")
        if reply[4:6] != request[4:6]:
            raise S7NoReply(f"{self.endpoint}: {what}: reply to another request (PDU reference {reply[4:6].hex()})")
        if reply[10] or reply[11]:
            raise S7NoReply(
                f"{self.endpoint}: {what}: PLC answered error class {reply[10]:#04x} code {reply[11]:#04x}; "
                "check the rack/slot (or TSAPs) and the PLC's access settings (PUT/GET allowed on S7-1200/1500)"
            )
        return reply

    async def read(self, items: tuple[ReadItem, ...]) -> list[bytes | int]:
        """Read up to 20 items in one request: per item its bytes, or the PLC's return code if refused.

        Raises:
            S7NoReply: No reply within the timeout, the link lost, or a malformed reply.
        """
        request = self._built.get(items)
        if request is None:
            specs = [(AREA_CODES[area], db, start, size) for area, db, start, size in items]
            request = bytearray(self._protocol.build_multi_read_request(specs))
            if len(self._built) < 1024:  # a plan's requests; more would be a caller building new ones per poll
                self._built[items] = request
        self._sequence = self._sequence % 0xFFFF + 1
        struct.pack_into(">H", request, 4, self._sequence)  # the PDU reference the reply must echo

        def what() -> str:  # only for errors
            shown = ", ".join(f"{a}{db or ''}[{s}:{s + n}]" for a, db, s, n in items[:4])
            return f"read {len(items)} item(s) ({shown}{' ...' if len(items) > 4 else ''})"

        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await self._exchange(request, "read")
        except TimeoutError as exc:
            await self.close()
            raise S7NoReply(f"{self.endpoint}: {what()}: no reply within {self._timeout_s}s") from exc
        except (S7Error, OSError) as exc:
            await self.close()
            raise S7NoReply(f"{self.endpoint}: {what()}: {exc}") from exc
        except S7NoReply:
            await self.close()  # the stream can no longer be trusted
            raise
        try:
            return self._items(reply, items)
        except (struct.error, IndexError, ValueError) as exc:
            await self.close()  # the stream can no longer be trusted
            raise S7NoReply(f"{self.endpoint}: {what()}: malformed reply ({exc})") from exc

    def _items(self, reply: bytes, items: Sequence[ReadItem]) -> list[bytes | int]:
        param_len, data_len = struct.unpack_from(">HH", reply, 6)
        if param_len < 2 or reply[12] != _READ_VAR or reply[13] != len(items):
            raise ValueError(f"reply is not a read of {len(items)} items")
        at = 12 + param_len
        end = at + data_len
        if end > len(reply):
            raise ValueError(f"reply declares {data_len} data bytes, carries {len(reply) - at}")
        out: list[bytes | int] = []
        for k in range(len(items)):
            code, transport, length = struct.unpack_from(">BBH", reply, at)
            at += 4
            if code != ITEM_OK:
                out.append(code)
                continue
            # transport sizes 3, 4, 5 give the length in bits, the others (9: octet string) in bytes
            n = length // 8 if transport in (0x03, 0x04, 0x05) else length
            if at + n > end:
                raise ValueError(f"item {k} declares {n} bytes past the reply's end")
            out.append(reply[at : at + n])
            at += n + (n & 1 if k < len(items) - 1 else 0)  # fill byte after an odd item but the last
        return out


class S7Server:
    """python-snap7's S7 server on loopback, serving the given areas (bytearrays, shared: change
    them to change what the PLC answers). `function_codes` lists the S7 function of every job
    request received (0xF0 setup, 0x04 read, 0x05 write, 0x28/0x29 control ...)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int, areas: Mapping[tuple[str, int], bytearray]) -> None:
        self.host, self.port = host, port
        self.areas = dict(areas)
        self.function_codes: list[int] = []
        codes = self.function_codes

        class _Recording(_Snap7Server):
            def _process_request(self, request_data: bytes, client_address: tuple[str, int]) -> bytes | None:
                if len(request_data) > 10 and request_data[1] == 0x01:  # a job: its function follows the header
                    codes.append(request_data[10])
                result: bytes | None = super()._process_request(request_data, client_address)
                return result

        self._server = _Recording(log=False)
        for (area, number), data in self.areas.items():
            self._server.register_area(_SERVER_AREAS[area], number, data)

    def start(self) -> None:
        self._server.start_to(self.host, self.port)

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> S7Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
