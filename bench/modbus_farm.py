"""Simulated Modbus TCP devices for the load benches: many unit ids behind one port, cheap to serve.

    python -m bench.modbus_farm PORT UNITS POINTS

Every unit id 1..UNITS holds POINTS FLOAT32 values (ABCD) in holding registers 0..2*POINTS-1,
point k worth 20 + k/10. Each request (function 3 or 4) is answered from a cache of response
bodies by (function, address, count), so one process serves thousands of reads a second on a
fraction of a core: the bench measures the gateway and Telegraf, not the devices (whose CPU it
still reports apart). A request outside the registers gets exception 2 (illegal data address), another
function exception 1, as a device would answer. Listens on 127.0.0.1 only, until killed.
"""

from __future__ import annotations

import asyncio
import struct
import sys


def registers(points: int) -> bytes:
    return b"".join(struct.pack(">f", 20.0 + k / 10) for k in range(points))


class Farm(asyncio.Protocol):
    def __init__(self, regs: bytes, units: int) -> None:
        self.regs = regs
        self.units = units
        self.buf = b""
        self.cache: dict[tuple[int, int, int], bytes] = {}
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        while len(self.buf) >= 7:
            length = int.from_bytes(self.buf[4:6], "big")
            end = 6 + length
            if length < 2 or length > 254:  # not MBAP: drop the connection as a device would
                assert self.transport is not None
                self.transport.close()
                self.buf = b""
                return
            if len(self.buf) < end:
                break
            tid, unit, pdu = self.buf[0:2], self.buf[6], self.buf[7:end]
            self.buf = self.buf[end:]
            out.append(tid + b"\x00\x00" + self.answer(unit, pdu))
        if out:
            assert self.transport is not None
            self.transport.write(b"".join(out))

    def answer(self, unit: int, pdu: bytes) -> bytes:
        """The MBAP length, unit id and response PDU."""
        fc = pdu[0] if pdu else 0
        if fc not in (3, 4) or len(pdu) != 5 or not 1 <= unit <= self.units:
            body = bytes((fc | 0x80, 1))
        else:
            address, count = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
            key = (fc, address, count)
            body = self.cache.get(key, b"")
            if not body:
                if count < 1 or count > 125 or 2 * (address + count) > len(self.regs):
                    body = bytes((fc | 0x80, 2))
                else:
                    body = bytes((fc, 2 * count)) + self.regs[2 * address : 2 * (address + count)]
                    self.cache[key] = body
        return (len(body) + 1).to_bytes(2, "big") + bytes((unit,)) + body


async def serve(port: int, units: int, points: int) -> None:
    regs = registers(points)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Farm(regs, units), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
