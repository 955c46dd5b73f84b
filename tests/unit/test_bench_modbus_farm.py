"""bench/modbus_farm.py, the load benches' simulated devices, read through emgate's own Modbus client."""

from __future__ import annotations

import asyncio
import struct

import pytest

from bench.modbus_farm import serve
from gateway.sources.pymodbus_client import ModbusClient, ModbusExceptionReply
from tests.services.ports import free_port


async def test_every_unit_answers_its_points_and_refuses_what_it_does_not_hold() -> None:
    port = free_port()
    server = asyncio.create_task(serve(port, 3, 240))
    client = ModbusClient(transport="tcp", port=port, timeout_s=2.0)
    try:
        for _ in range(50):
            try:
                await client.connect()
                break
            except Exception:  # the server is still starting
                await asyncio.sleep(0.05)
        for unit in (1, 3):
            for first in (0, 60, 180):  # FLOAT32 points 0.., 60.., 180..: 120 registers a read
                words = await client.read("holding", 2 * first, 120, unit)
                values = struct.unpack(">60f", b"".join(w.to_bytes(2, "big") for w in words))
                assert values == pytest.approx([20.0 + k / 10 for k in range(first, first + 60)], rel=1e-6)
        words = await client.read("input", 0, 2, 2)  # function 4 too, cached apart from function 3
        assert struct.unpack(">f", b"".join(w.to_bytes(2, "big") for w in words))[0] == pytest.approx(20.0)
        with pytest.raises(ModbusExceptionReply) as exc:
            await client.read("holding", 470, 20, 1)  # past register 479
        assert exc.value.illegal_address
        with pytest.raises(ModbusExceptionReply):
            await client.read("holding", 0, 2, 4)  # no unit 4
        words = await client.read("holding", 0, 2, 1)  # the connection still serves
        assert len(words) == 2
    finally:
        client.close()
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server
