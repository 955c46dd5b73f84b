from __future__ import annotations

import pytest

from gateway.settings.site import ModbusPointConfig
from gateway.sources.modbus_plan import plan_reads


def pt(address: int, type_: str = "UINT16", register: str = "holding") -> ModbusPointConfig:
    return ModbusPointConfig(signal="s", address=address, type=type_, register=register)


@pytest.mark.parametrize(
    ("points", "max_registers", "max_gap", "expected"),
    [
        # contiguous FLOAT32s: one block 0..5
        ([pt(0, "FLOAT32"), pt(2, "FLOAT32"), pt(4, "FLOAT32")], 125, 0, [("holding", 0, 6)]),
        # a 3-register gap is bridged when max_gap >= 3, not when 2
        ([pt(0), pt(4)], 125, 3, [("holding", 0, 5)]),
        ([pt(0), pt(4)], 125, 2, [("holding", 0, 1), ("holding", 4, 1)]),
        # max_registers caps a block
        ([pt(0), pt(1), pt(2)], 2, 10, [("holding", 0, 2), ("holding", 2, 1)]),
        # one register per read
        ([pt(0), pt(1)], 1, 0, [("holding", 0, 1), ("holding", 1, 1)]),
        # kinds never share a block; order inside a kind by address
        ([pt(5, register="input"), pt(0), pt(1, register="input")], 125, 8, [("holding", 0, 1), ("input", 1, 5)]),
    ],
)
def test_plan_reads(
    points: list[ModbusPointConfig], max_registers: int, max_gap: int, expected: list[tuple[str, int, int]]
) -> None:
    plan = plan_reads(points, max_registers=max_registers, max_gap=max_gap)
    assert [(b.kind, b.start, b.count) for b in plan] == expected
    covered = sorted(i for b in plan for i in b.points)
    assert covered == list(range(len(points)))
