"""The OPC UA source against asyncua's own server on 127.0.0.1 (tests/support/opcua_peer.py)."""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.clock import SystemClock
from gateway.core.model import SampleQuality
from gateway.pipeline import supervise
from gateway.settings.site import RetryConfig
from tests.factories import site_settings
from tests.services.ports import free_port
from tests.support.opcua_peer import GOOD, TYPES, OpcUaPeer, StallingProxy, collect, latest, make

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FAST_RETRY = RetryConfig(base_s=0.05, cap_s=0.5)
STALE, COMM = int(SampleQuality.STALE), int(SampleQuality.COMM_ERROR)


@pytest.fixture
async def peer() -> AsyncIterator[OpcUaPeer]:
    p = OpcUaPeer(free_port())
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
        p.forget()


def expected(name: str) -> float:
    value = TYPES[name][1]
    return float(value)


def every_type(peer: OpcUaPeer) -> dict[str, str]:
    return {f"ns={peer.ns};s={name}": name.lower() for name in TYPES}


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_every_scalar_type_and_boolean(peer: OpcUaPeer, mode: str) -> None:
    nodes = every_type(peer)
    src, queue, signals = make(
        {"url": peer.url, "mode": mode, "poll_s": 0.2, "publishing_interval_ms": 100, "sampling_interval_ms": 50}, nodes
    )
    async with src:
        task = asyncio.create_task(src.run())
        try:
            got = latest(await collect(queue, signals, lambda s: len(latest(s)) == len(TYPES)))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert got == {name.lower(): (expected(name), GOOD) for name in TYPES}
    assert src.counters.bad_samples == 0


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_status_codes_become_quality_and_bad_is_never_zero(peer: OpcUaPeer, mode: str) -> None:
    nodes = {
        f"ns={peer.ns};i=1001": "flow",  # numeric NodeId
        "/0:Objects/2:Plant/2:Double": "double",  # browse path
        f"ns={peer.ns};s=Text": "text",  # a string: not a number
        f"ns={peer.ns};s=Nowhere": "nowhere",  # BadNodeIdUnknown
    }
    src, queue, signals = make(
        {
            "url": peer.url,
            "mode": mode,
            "poll_s": 0.1,
            "publishing_interval_ms": 100,
            "sampling_interval_ms": 50,
            "node_retry_s": 0.5,
        },
        nodes,
    )
    async with src:
        task = asyncio.create_task(src.run())
        try:
            first = latest(await collect(queue, signals, lambda s: len(latest(s)) == 4))
            await peer.set("Flow", 0.0, 0x80050000)  # BadCommunicationError, with a zero on the server
            await peer.set("Double", 7.5, 0x40000000)  # Uncertain
            later = latest(
                await collect(
                    queue,
                    signals,
                    lambda s: (
                        "flow" in latest(s)
                        and latest(s)["flow"][1] == COMM
                        and "double" in latest(s)
                        and latest(s)["double"][1] == STALE
                    ),
                )
            )
            await peer.set("Flow", 11.0, 0)  # good again
            again = latest(await collect(queue, signals, lambda s: latest(s).get("flow") == (11.0, GOOD)))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert first["flow"] == (10.0, GOOD) and first["double"] == (expected("Double"), GOOD)
    for bad in ("text", "nowhere"):
        assert math.isnan(first[bad][0]) and first[bad][1] == COMM
    assert math.isnan(later["flow"][0]) and later["flow"][1] == COMM  # the server's zero never comes through
    assert later["double"] == (7.5, STALE)
    assert again["flow"] == (11.0, GOOD)
    assert src.counters.statuses.get("BadNodeIdUnknown", 0) >= 1
    assert src.counters.statuses.get("BadTypeMismatch", 0) >= 1
    assert src.counters.uncertain_samples >= 1


async def test_source_or_server_timestamp(peer: OpcUaPeer) -> None:
    src, queue, signals = make(
        {"url": peer.url, "mode": "poll", "poll_s": 0.1, "timestamp": "source"}, {f"ns={peer.ns};i=1001": "flow"}
    )
    stamped = 1_700_000_000.0
    await peer.set("Flow", 3.0, source_ts=stamped)
    async with src:
        task = asyncio.create_task(src.run())
        try:
            got = await collect(queue, signals, lambda s: len(s) >= 1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert got[0][:3] == ("flow", 3.0, GOOD) and got[0][3] == pytest.approx(stamped)


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_recovers_from_a_restart_with_its_nodes_removed_and_readded(
    peer: OpcUaPeer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    nodes = {"/0:Objects/2:Plant/2:Flow": "flow", f"ns={peer.ns};s=Double": "double"}
    src, queue, signals = make(
        {
            "url": peer.url,
            "mode": mode,
            "poll_s": 0.1,
            "publishing_interval_ms": 100,
            "sampling_interval_ms": 50,
            "watchdog_s": 0.3,
            "timeout_s": 1.0,
            "node_retry_s": 0.3,
        },
        nodes,
    )
    health = src.health
    task = asyncio.create_task(supervise(lambda: src, FAST_RETRY, health, SystemClock()))
    try:
        assert latest(await collect(queue, signals, lambda s: len(latest(s)) == 2))["flow"] == (10.0, GOOD)
        await peer.stop()  # the server goes away ...
        gap = await collect(queue, signals, lambda s: any(q == COMM for _, _, q, _ in s))
        t0 = time.monotonic()
        while health.ok:
            assert time.monotonic() - t0 < 10, "the loss was never noticed"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a few failed reconnects
        await peer.start(with_variables=False)  # ... comes back without its nodes (address space reloading)
        missing = await collect(queue, signals, lambda s: any(q == COMM for _, _, q, _ in s), timeout_s=20)
        assert src.counters.connects >= 2
        await peer.add_variables()  # ... and the nodes return
        await peer.set("Flow", 42.0)
        back = await collect(queue, signals, lambda s: latest(s).get("flow") == (42.0, GOOD), timeout_s=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(math.isnan(v) for _, v, q, _ in gap + missing if q == COMM)  # gaps are NaN, never zero
    assert {s for s, _, q, _ in missing if q == COMM} >= {"flow"}
    assert latest(back)["flow"] == (42.0, GOOD) and health.ok
    lost = [r for r in caplog.records if "opcua[dcs]: lost" in r.getMessage()]
    recovered = [r for r in caplog.records if "opcua[dcs]: recovered" in r.getMessage()]
    assert len(lost) == 1 and len(recovered) == 1  # each state change logged once
    assert health.errors >= 1  # counted: emgate_component_errors{kind="opcua"}
    node_logs = [r for r in caplog.records if "node /0:Objects/2:Plant/2:Flow" in r.getMessage()]
    assert 1 <= len(node_logs) <= 4, [r.getMessage() for r in node_logs]  # once per change, not per sample


async def test_never_sends_write_or_call(peer: OpcUaPeer) -> None:
    for mode in ("subscribe", "poll"):
        src, queue, signals = make(
            {"url": peer.url, "mode": mode, "poll_s": 0.1, "publishing_interval_ms": 100},
            {"/0:Objects/2:Plant/2:Flow": "flow", f"ns={peer.ns};s=Int32": "int32"},
        )
        async with src:
            task = asyncio.create_task(src.run())
            try:
                await collect(queue, signals, lambda s: len(s) >= 4)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    seen = set(peer.services)
    assert {"ReadRequest", "CreateSessionRequest", "CreateMonitoredItemsRequest"} <= seen, seen
    mutating = {
        "WriteRequest",
        "CallRequest",
        "AddNodesRequest",
        "DeleteNodesRequest",
        "AddReferencesRequest",
        "DeleteReferencesRequest",
        "HistoryUpdateRequest",
        "RegisterServerRequest",
        "RegisterServer2Request",
    }
    assert not seen & mutating, seen & mutating


async def emgate(*argv: str) -> tuple[int, str, str]:
    """`emgate ARGV` in a child process (the peer keeps serving in this loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_browse_lists_nodes_with_their_types_and_reads_one(peer: OpcUaPeer) -> None:
    url = f"opcua://127.0.0.1:{peer.port}/emgate/"
    code, out, err = await emgate("browse", url, "--node", f"ns={peer.ns};s=Plant", "--depth", "1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("14 node(s)")  # the folder, 11 types, the text and the flow
    assert "Plant  [Object]  ns=2;s=Plant" in lines[1]
    assert f"  2:UInt32  [Variable]  ns=2;s=UInt32  UInt32 = {TYPES['UInt32'][1]}" in lines
    assert "  2:Boolean  [Variable]  ns=2;s=Boolean  Boolean = True" in lines
    assert "  2:Flow  [Variable]  ns=2;i=1001  Double = 10.0" in lines
    code, out, err = await emgate("browse", url, "--node", "/0:Objects/2:Plant/2:Float", "--depth", "0")
    assert code == 0, err
    assert out.splitlines()[1] == "2:Float  [Variable]  ns=2;s=Float  Float = 1.5"
    assert peer.services.count("WriteRequest") == peer.services.count("CallRequest") == 0


async def test_browse_errors_exit_2_for_bad_input_and_1_for_an_unknown_node(peer: OpcUaPeer) -> None:
    url = f"opcua://127.0.0.1:{peer.port}"
    code, _, err = await emgate("browse", "http://127.0.0.1:1")
    assert code == 2 and "is not opcua://HOST:PORT" in err and "Traceback" not in err
    code, _, err = await emgate("browse", url, "--node", "Plant")
    assert code == 2 and "--node 'Plant' is not a NodeId" in err and "Traceback" not in err
    code, _, err = await emgate("browse", url, "--node", "/0:Objects/2:Nowhere", "--depth", "0")
    assert code == 1 and "BadNoMatch" in err and "Traceback" not in err, err
    code, _, err = await emgate("browse", f"opcua://127.0.0.1:{free_port()}", "--timeout", "1")
    assert code == 1 and "check the address and port" in err and "Traceback" not in err, err


async def test_gateway_runs_a_supervised_session_and_metrics_count_the_loss(peer: OpcUaPeer, tmp_path: Path) -> None:
    from gateway.http.metrics import GatewayCollector
    from gateway.http.status import device_rows
    from gateway.pipeline import Gateway

    settings = site_settings(
        "t",
        signals={"flow": {"unit": "t/h"}},
        ledger={"path": str(tmp_path / "l.sqlite")},
        opcua={
            "servers": [
                {
                    "name": "dcs",
                    "url": peer.url,
                    "publishing_interval_ms": 100,
                    "sampling_interval_ms": 50,
                    "watchdog_s": 0.3,
                    "timeout_s": 1.0,
                    "nodes": [{"node": "/0:Objects/2:Plant/2:Flow", "signal": "flow"}],
                }
            ]
        },
        retry={"base_s": 0.05, "cap_s": 0.5},
    )

    def metric(name: str) -> float | None:
        for family in GatewayCollector(gw).collect():
            for s in family.samples:
                if s.name == name and s.labels.get("kind") == "opcua" and s.labels.get("source") == "dcs":
                    return float(s.value)
        return None

    async def until(check: Any, what: str) -> None:
        deadline = time.monotonic() + 20
        while not check():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    gw = Gateway.build(settings)
    task = asyncio.create_task(gw.run())
    try:
        await until(lambda: "opcua[dcs]" in gw.window.counters.sources, "no samples reached the minute window")
        assert "opcua[dcs]" in {t.get_name() for t in asyncio.all_tasks()}
        assert metric("emgate_component_up") == 1.0 and metric("emgate_component_errors_total") == 0.0
        await peer.stop()
        await until(lambda: metric("emgate_component_up") == 0.0, "the loss is not in /metrics")
        await peer.start()
        await until(lambda: metric("emgate_component_up") == 1.0, "the recovery is not in /metrics")
        assert (metric("emgate_component_errors_total") or 0) >= 1
        assert gw.opcua_sources[0].counters.connects >= 2
        opcua = {
            (s.name, s.labels.get("source")): s.value
            for family in GatewayCollector(gw).collect()
            for s in family.samples
            if s.name.startswith("emgate_opcua_")
        }
        assert opcua[("emgate_opcua_connects_total", "opcua[dcs]")] >= 2
        assert ("emgate_opcua_node_state_changes_total", "opcua[dcs]") in opcua
        rows = {r["name"]: r for r in device_rows(gw, gw.clock.now())}
        assert rows["opcua[dcs]"]["ok"] is True and rows["opcua[dcs]"]["errors"] >= 1  # its status-page row
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gw.close()


def test_check_config_names_an_undeclared_signal_and_a_bad_node() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        site_settings(
            "t",
            signals={"flow": {"unit": "t/h"}},
            opcua={
                "servers": [{"name": "dcs", "url": "opc.tcp://127.0.0.1:4840", "nodes": [{"node": "ns=2;s=X", "signal": "gas"}]}]
            },
        )
    assert "opcua server 'dcs' node 'ns=2;s=X': signal 'gas' is not declared under [signals]" in str(info.value)
    with pytest.raises(ValidationError) as info:
        site_settings(
            "t",
            signals={"flow": {"unit": "t/h"}},
            opcua={
                "servers": [
                    {"name": "dcs", "url": "opc.tcp://127.0.0.1:4840", "nodes": [{"node": "Plant.Flow", "signal": "flow"}]}
                ]
            },
        )
    assert "node 'Plant.Flow': is not a NodeId" in str(info.value)
    with pytest.raises(ValidationError) as info:
        site_settings(
            "t",
            signals={"flow": {"unit": "t/h"}},
            opcua={
                "servers": [
                    {
                        "name": "dcs",
                        "url": "opc.tcp://127.0.0.1:4840",
                        "security_policy": "Basic256Sha256",
                        "security_mode": "Sign",
                    }
                ]
            },
        )
    assert "needs certificate_file, private_key_file, server_certificate_file" in str(info.value)


def test_the_operator_guide_example_passes_check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    guide = (Path(__file__).parents[2] / "docs" / "operator-guide.md").read_text(encoding="utf-8")
    section = guide[guide.index("## OPC UA servers") :]
    start = section.index("```toml") + len("```toml")
    example = section[start : section.index("```\n", start)]
    pki = tmp_path / "opcua"
    pki.mkdir()
    for name in ("emgate.der", "emgate.pem", "sinter-dcs.der", "sinter-dcs.password"):
        (pki / name).write_text("x", encoding="utf-8")
    (pki / "emgate.pem").chmod(0o644)  # a key readable by others: a warning
    (pki / "sinter-dcs.password").chmod(0o600)
    site = tmp_path / "site.toml"
    site.write_text('[site]\nname = "w"\n' + example.replace("/etc/emgate/opcua", str(pki)), encoding="utf-8")
    assert main(["check-config", str(site)]) == 0
    out, err = capsys.readouterr()
    assert "1 OPC UA server(s), 3 signal(s)" in out
    assert "opcua.servers[0].private_key_file" in err and "chmod 600" in err


async def test_a_stalled_network_ends_in_a_new_session(peer: OpcUaPeer) -> None:
    proxy = StallingProxy(peer.port)
    await proxy.start()
    src, queue, signals = make(
        {
            "url": f"opc.tcp://127.0.0.1:{proxy.port}/emgate/",
            "publishing_interval_ms": 100,
            "sampling_interval_ms": 50,
            "watchdog_s": 0.3,
            "timeout_s": 1.0,
        },
        {f"ns={peer.ns};i=1001": "flow"},
    )
    health = src.health
    task = asyncio.create_task(supervise(lambda: src, FAST_RETRY, health, SystemClock()))
    try:
        assert latest(await collect(queue, signals, lambda s: len(s) >= 1))["flow"] == (10.0, GOOD)
        proxy.stalled = True  # nothing closes: only the keep-alive can notice
        gap = await collect(queue, signals, lambda s: any(q == COMM for _, _, q, _ in s), timeout_s=20)
        deadline = time.monotonic() + 5
        while health.ok:  # the gap is emitted, then supervise records the loss
            assert time.monotonic() < deadline, "the loss was never recorded"
            await asyncio.sleep(0.02)
        proxy.stalled = False
        await peer.set("Flow", 12.0)
        back = await collect(queue, signals, lambda s: latest(s).get("flow") == (12.0, GOOD), timeout_s=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await proxy.stop()
    assert [v for _, v, q, _ in gap if q == COMM] and all(math.isnan(v) for _, v, q, _ in gap if q == COMM)
    assert latest(back)["flow"] == (12.0, GOOD) and health.ok
    assert src.counters.connects >= 2 and proxy.connections >= 2  # a new session on a new connection


async def test_an_unchanged_value_is_repeated_while_the_session_lives(peer: OpcUaPeer) -> None:
    src, queue, signals = make(
        {"url": peer.url, "publishing_interval_ms": 100, "sampling_interval_ms": 50, "watchdog_s": 0.3},
        {f"ns={peer.ns};i=1001": "flow"},
    )
    assert src.hold_s == pytest.approx(0.3)
    async with src:
        task = asyncio.create_task(src.run())
        try:
            got = await collect(queue, signals, lambda s: len(s) >= 4, timeout_s=10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [(s, v, q) for s, v, q, _ in got] == [("flow", 10.0, GOOD)] * 4  # one change, then held values
    stamps = [t for *_, t in got]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[1] >= 2 * 0.3 * 0.9
    assert src.counters.notifications == 1


async def test_probe_reads_one_node(peer: OpcUaPeer) -> None:
    url = f"opcua://127.0.0.1:{peer.port}/emgate/"
    code, out, err = await emgate("probe", "--opcua", url, "--node", f"ns={peer.ns};s=Int64")
    assert code == 0, err
    assert out.splitlines()[1] == f"2:Int64  [Variable]  ns=2;s=Int64  Int64 = {TYPES['Int64'][1]}"
    code, _, err = await emgate("probe", "--opcua", url)
    assert code == 2 and "--opcua URL and --node ID go together" in err
    code, _, err = await emgate("probe", "--host", "127.0.0.1")
    assert code == 2 and "--address is required" in err and "Traceback" not in err
