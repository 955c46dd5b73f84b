"""The one module that imports pymodbus (pinned to 3.16.x in pyproject.toml).

pymodbus changes names and behaviour between minors (slave= became device_id=, its datastore
was replaced by SimData/SimDevice in 3.10+, convert_from_registers changed results), so the rest
of the gateway sees only this small surface:

- `ModbusClient`: connect, read one block with function code 1, 2, 3 or 4, close. There is no
  write method, by design: emgate never writes to a device.
- `RegisterServer`: a Modbus TCP server whose registers are filled on each read by a callback,
  used by the simulated plant and the tests.

Errors are translated once, here: no reply or a lost link -> `ModbusNoReply` (transient, the
source backs off); an exception response -> `ModbusExceptionReply` with its code (2 = illegal
data address, which the read planner isolates; 6 = busy).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Literal, TypeVar, cast

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusException

from gateway.core.errors import GatewayError, TransientError

# pymodbus logs every failed request at ERROR; the sources report state changes themselves.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

T = TypeVar("T")
RegisterKind = Literal["holding", "input", "coil", "discrete"]
READ_FUNCTION_CODES: dict[str, int] = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


class ModbusNoReply(TransientError):
    """No (valid) reply: timeout, connection lost, garbage frame."""


class ModbusExceptionReply(GatewayError):
    """The device answered with a Modbus exception code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code

    @property
    def illegal_address(self) -> bool:
        return self.code == 2


class RequestDeadline:
    """`asyncio.timeout` for requests that come one after another, on one timer that outlives them.

    asyncio.timeout schedules a timer per request and cancels it on the reply; pushing each onto
    the loop's heap (ordered by a Python-level __lt__) cost about as much as decoding the reply.
    Requests on a link come one at a time, so this keeps one timer: it is re-armed only when it
    fires before the current request's deadline (then for that deadline), or when a request
    brings a deadline earlier than the timer's. The semantics are asyncio.timeout's: on expiry
    the task is cancelled, and that CancelledError becomes TimeoutError unless someone else
    cancelled the task too.
    """

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._deadline = 0.0
        self._expired = False

    @property
    def busy(self) -> bool:
        return self._task is not None

    async def bound(self, request: Awaitable[T], limit_s: float) -> T:
        """Await `request`; raise TimeoutError if it takes longer than `limit_s`."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None and self._task is None
        cancelling = task.cancelling()
        self._task, self._deadline, self._expired = task, loop.time() + limit_s, False
        if self._handle is None or self._handle.when() > self._deadline:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = loop.call_at(self._deadline, self._on_timer, loop)
        try:
            result = await request
        except BaseException as exc:
            if self._expired and task.uncancel() <= cancelling and isinstance(exc, asyncio.CancelledError):
                raise TimeoutError from exc  # our cancellation, and only ours
            raise
        else:
            if self._expired:  # expired, yet the request finished: take our cancellation back
                task.uncancel()
            return result
        finally:
            self._task = None

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        if self._task is None:  # idle: the next request arms a new timer
            return
        if loop.time() < self._deadline:  # armed for an earlier request that has finished
            self._handle = loop.call_at(self._deadline, self._on_timer, loop)
            return
        self._expired = True
        self._task.cancel()

    def close(self) -> None:
        """Drop the timer; a request still in flight keeps it (its deadline must hold)."""
        if self._handle is not None and self._task is None:
            self._handle.cancel()
            self._handle = None


class ModbusClient:
    """A read-only Modbus client for one TCP connection or one serial line."""

    def __init__(
        self,
        *,
        transport: Literal["tcp", "rtu", "rtu_over_tcp"],
        host: str = "127.0.0.1",
        port: int = 502,
        serial_port: str | None = None,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        timeout_s: float = 1.0,
        endpoint: str = "",
    ) -> None:
        self.endpoint = endpoint or (serial_port if transport == "rtu" else f"{host}:{port}") or "modbus"
        self.transport = transport
        self._timeout_s = timeout_s
        # pymodbus gets no timeout of its own (None): every connect and request here is bounded by
        # asyncio.timeout instead. With a timeout, pymodbus (1) awaits each reply through
        # asyncio.wait_for, which on Python 3.11 swallows a cancellation that arrives just after
        # the reply did (bpo-42130): the cancelled task carries on, the likely cause of a pty
        # test's stall (tests/integration/test_modbus_cancellation.py); (2) counts its timeouts
        # towards a hidden disconnect, when the link (gateway/sources/modbus_link.py) decides
        # when a connection is reset; (3) adds a second timer to every request.
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if transport == "rtu":
            if not serial_port:
                raise ValueError("transport rtu needs a serial port")
            self._client = AsyncModbusSerialClient(
                serial_port,
                framer=FramerType.RTU,
                baudrate=baudrate,
                parity=parity,
                stopbits=stopbits,
                timeout=None,  # type: ignore[arg-type]  # pymodbus annotates float, accepts None: no timer of its own (see above)
                retries=0,
                reconnect_delay=0,
            )
        else:
            framer = FramerType.RTU if transport == "rtu_over_tcp" else FramerType.SOCKET
            # reconnect_delay=0 turns off pymodbus' hidden reconnect: the source owns reconnects.
            self._client = AsyncModbusTcpClient(
                host,
                port=port,
                framer=framer,
                timeout=None,  # type: ignore[arg-type]  # pymodbus annotates float, accepts None: no timer of its own (see above)
                retries=0,
                reconnect_delay=0,
            )
        self._deadline = RequestDeadline()
        # bound once: building this per request showed in the profile
        self._calls = {
            "holding": self._client.read_holding_registers,
            "input": self._client.read_input_registers,
            "coil": self._client.read_coils,
            "discrete": self._client.read_discrete_inputs,
        }

    async def connect(self) -> None:
        """Connect or raise ModbusNoReply (pymodbus' own context manager ignores a failed connect)."""
        try:
            # bounded here too: a stalled connect must not hold a shared line (or a shutdown)
            async with asyncio.timeout(self._timeout_s + 1.0):
                ok = await self._client.connect()
        except TimeoutError as exc:
            self._client.close()
            raise ModbusNoReply(f"{self.endpoint}: connect did not finish within {self._timeout_s + 1.0:.1f}s") from exc
        except (OSError, ModbusException) as exc:
            raise ModbusNoReply(f"{self.endpoint}: connect failed: {exc}") from exc
        if not ok:
            raise ModbusNoReply(f"{self.endpoint}: connect failed; check host, port (or serial device) and that the device is up")

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    def close(self) -> None:
        self._deadline.close()
        self._client.close()

    async def read(self, kind: RegisterKind, address: int, count: int, unit_id: int, timeout_s: float | None = None) -> list[int]:
        """Read `count` registers (16-bit words) or bits (0/1) starting at `address`.

        `timeout_s` (default: the client's) bounds this one request, so devices with different
        timeouts can share one serial line or TCP connection.
        """
        call = self._calls[kind]
        limit_s = self._timeout_s if timeout_s is None else min(timeout_s, self._timeout_s)

        def what() -> str:  # only for errors: formatting it per request showed in the profile
            return f"{self.endpoint} unit {unit_id}: read {kind}({address}, count={count})"

        try:
            if self._deadline.busy:  # reads on one client overlap (not through a link): a timer each
                async with asyncio.timeout(limit_s):
                    response = await call(address, count=count, device_id=unit_id)
            else:
                response = await self._deadline.bound(call(address, count=count, device_id=unit_id), limit_s)
        except TimeoutError as exc:
            raise ModbusNoReply(f"{what()}: no reply within {limit_s}s; check the unit id and the link") from exc
        except ModbusException as exc:
            raise ModbusNoReply(f"{what()}: {exc}; check the unit id and the link") from exc
        except (OSError, AttributeError, ValueError, IndexError, KeyError) as exc:
            # a garbled frame can surface as a parsing error inside pymodbus
            raise ModbusNoReply(f"{what()}: bad reply ({type(exc).__name__}: {exc})") from exc
        if response.isError():
            code = int(getattr(response, "exception_code", 0) or 0)
            raise ModbusExceptionReply(f"{what()}: device answered exception code {code}", code)
        if kind == "coil" or kind == "discrete":
            bits = list(response.bits)[:count]
            if len(bits) < count:
                raise ModbusNoReply(f"{what()}: short reply ({len(bits)} bits)")
            return [int(b) for b in bits]
        registers = cast("list[int]", response.registers)  # a list of its own per response: no copy needed
        if len(registers) != count:
            raise ModbusNoReply(f"{what()}: reply has {len(registers)} registers, expected {count}")
        return registers


FillCallback = Callable[[int, int, int, list[int]], Awaitable[int | None] | int | None]
"""fill(function_code, address, count, registers): update `registers` (the whole block, from
address 0) in place before the reply; return a Modbus exception code to refuse the read."""


class RegisterServer:
    """A Modbus TCP server on loopback with `n_registers` registers per unit id.

    Holding and input registers, coils and discrete inputs share one register block (pymodbus'
    shared mode). Every read calls the unit's fill callback first, so a simulator computes
    values on demand; `fills` maps unit id -> callback (None: registers stay as written).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int, fills: Mapping[int, FillCallback | None], n_registers: int) -> None:
        # Imported here: `emgate run` polls devices and never serves, and pymodbus' server side
        # adds 2.5 MB of resident memory (bench.load_10k).
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        self.host, self.port = host, port
        devices = [
            SimDevice(
                id=uid, simdata=[SimData(0, count=n_registers, values=0, datatype=DataType.REGISTERS)], action=self._action(fill)
            )
            for uid, fill in fills.items()
        ]
        self._server = ModbusTcpServer(devices, address=(host, port))
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _action(fill: FillCallback | None) -> Callable[[int, int, int, int, list[int], object], Coroutine[Any, Any, ExcCodes | None]]:
        async def action(
            function_code: int, start_address: int, address: int, count: int, registers: list[int], set_values: object
        ) -> ExcCodes | None:
            if set_values is not None:
                return ExcCodes.ILLEGAL_FUNCTION  # the simulator is read-only, like emgate
            if fill is None:
                return None
            result = fill(function_code, address, count, registers)
            if inspect.isawaitable(result):
                result = await result
            return ExcCodes(result) if result else None

        return action

    async def __aenter__(self) -> RegisterServer:
        self._task = asyncio.create_task(self._server.serve_forever(), name=f"modbus-server[{self.port}]")
        # serve_forever binds asynchronously; wait until the port accepts connections.
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                await writer.wait_closed()
                return self
            except OSError:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)
        raise OSError(f"modbus simulator did not start on {self.host}:{self.port}")

    async def __aexit__(self, *exc_info: object) -> None:
        await self._server.shutdown()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
