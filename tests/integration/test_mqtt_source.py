"""MqttSource against a real Mosquitto: wildcards, re-subscribe after a broker restart (clean
and persistent sessions), TLS with a client certificate plus password auth, the bounded
inbound queue, and the Gateway wiring (one supervised task per broker)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.core.clock import SystemClock
from gateway.core.errors import SourceUnavailable
from gateway.core.health import ComponentHealth
from gateway.core.model import SampleBatch, SampleQuality
from gateway.core.signals import SignalTable
from gateway.pipeline import supervise
from gateway.settings.site import RetryConfig
from gateway.sources.mqtt import MqttSource
from tests.factories import site_settings
from tests.services.binaries import require_binary
from tests.services.mosquitto import MosquittoService
from tests.services.ports import free_port
from tests.support.tls import make_pki

pytestmark = pytest.mark.integration

FAST_RETRY = RetryConfig(base_s=0.05, cap_s=0.5)


def make(
    broker: dict[str, Any], queue_size: int = 1000
) -> tuple[MqttSource, asyncio.Queue[SampleBatch], SignalTable]:
    settings = site_settings(
        "t",
        signals={"flow": {"unit": "t/h"}, "power": {"unit": "kW"}, "gas.flow": {"unit": "t/h"}},
        mqtt={"brokers": [{"name": "b", **broker}]},
    )
    signals = SignalTable.from_settings(settings)
    queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=queue_size)
    src = MqttSource(
        settings.mqtt.brokers[0], signals, queue, SystemClock(), ComponentHealth("mqtt[b]"), site=settings.site.name
    )
    return src, queue, signals


def subs(prefix: str) -> list[dict[str, Any]]:
    return [
        {"topic": f"{prefix}/+/flow", "format": "json", "fields": {"v": "flow"}},
        {"topic": f"{prefix}/meter/#", "format": "number", "signal": "power"},
        {"topic": f"{prefix}/lp", "format": "line_protocol"},
    ]


async def publish(broker: MosquittoService, items: list[tuple[str, bytes]], **kw: Any) -> None:
    async with aiomqtt.Client(broker.host, broker.port, **kw) as pub:
        for topic, payload in items:
            await pub.publish(topic, payload, qos=1)


async def values(
    queue: asyncio.Queue[SampleBatch], signals: SignalTable, n: int, timeout_s: float = 10.0
) -> list[tuple[str, float, int]]:
    out: list[tuple[str, float, int]] = []
    async with asyncio.timeout(timeout_s):
        while len(out) < n:
            batch = await queue.get()
            out += [
                (signals.names[i], v, q)
                for i, v, q in zip(
                    batch.signal_ids, batch.values.tolist(), batch.quality.tolist(), strict=True
                )
            ]
    return out


async def test_wildcards_and_formats_on_a_real_broker(mosquitto: MosquittoService, unique_topic: str) -> None:
    src, queue, signals = make({"port": mosquitto.port, "subscriptions": subs(unique_topic)})
    async with src:
        task = asyncio.create_task(src.run())
        await asyncio.to_thread(mosquitto.wait_for_subscription, f"{unique_topic}/lp")
        await publish(
            mosquitto,
            [
                (f"{unique_topic}/bf1/flow", b'{"v": 12.5}'),
                (f"{unique_topic}/meter/a/b", b"42"),
                (f"{unique_topic}/lp", b"gas flow=3.5"),
                (f"{unique_topic}/bf1/flow", b"oops"),
            ],
        )
        got = await values(queue, signals, 3)
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(got) == [("flow", 12.5, 0), ("gas.flow", 3.5, 0), ("power", 42.0, 0)]
    assert src.counters.bad_payloads == {f"{unique_topic}/bf1/flow": 1}


@pytest.mark.parametrize("clean_session", [True, False])
async def test_resubscribes_after_a_broker_restart(
    mosquitto_factory: Callable[..., MosquittoService], unique_topic: str, clean_session: bool
) -> None:
    broker = mosquitto_factory()
    src, queue, signals = make(
        {"port": broker.port, "clean_session": clean_session, "subscriptions": subs(unique_topic)}
    )
    health = src.health
    task = asyncio.create_task(supervise(lambda: src, FAST_RETRY, health, SystemClock()))
    try:
        await asyncio.to_thread(broker.wait_for_subscription, f"{unique_topic}/lp")
        await publish(broker, [(f"{unique_topic}/meter/x", b"1")])
        assert await values(queue, signals, 1) == [("power", 1.0, 0)]
        await asyncio.to_thread(broker.restart)
        if clean_session:  # a clean session is gone with the broker: only a new SUBSCRIBE brings data
            await asyncio.to_thread(broker.wait_for_subscription, f"{unique_topic}/lp")
        else:
            deadline = time.monotonic() + 10
            while src.counters.connects < 2:
                assert time.monotonic() < deadline, "no reconnect"
                await asyncio.sleep(0.05)
        await publish(broker, [(f"{unique_topic}/meter/x", b"2")])
        assert await values(queue, signals, 1) == [("power", 2.0, 0)]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert src.counters.connects >= 2 and health.ok


async def test_bounded_inbound_queue_drops_and_counts(mosquitto: MosquittoService, unique_topic: str) -> None:
    src, queue, signals = make(
        {
            "port": mosquitto.port,
            "queue_size": 10,
            "subscriptions": [{"topic": f"{unique_topic}/meter/#", "format": "number", "signal": "power"}],
        }
    )
    async with src:  # connected and subscribed, but nobody drains the inbound queue yet
        await asyncio.to_thread(mosquitto.wait_for_subscription, f"{unique_topic}/meter/#")
        await publish(mosquitto, [(f"{unique_topic}/meter/x", str(i).encode()) for i in range(200)])
        deadline = time.monotonic() + 10
        while src.counters.dropped_inbound + 10 < 200:
            assert time.monotonic() < deadline, src.counters
            await asyncio.sleep(0.05)
        task = asyncio.create_task(src.run())
        got = await values(queue, signals, 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert src.counters.dropped_inbound == 190
    assert [v for _, v, _ in got] == [float(i) for i in range(10)]


async def test_tls_with_client_certificate_and_password(
    mosquitto_factory: Callable[..., MosquittoService], tmp_path: Path, unique_topic: str
) -> None:
    make_pki(tmp_path)  # blocking CLI calls before any peer runs: nothing waits on this loop yet
    pw = tmp_path / "passwd"
    subprocess.run(  # noqa: ASYNC221
        [str(require_binary("mosquitto_passwd")), "-c", "-b", str(pw), "plant", "s3cret"],
        check=True,
        capture_output=True,
    )
    pw.chmod(0o600)
    tls_port = free_port()
    broker = mosquitto_factory(
        f"listener {tls_port} 127.0.0.1\ncafile {tmp_path}/ca.crt\ncertfile {tmp_path}/server.crt\n"
        f"keyfile {tmp_path}/server.key\nrequire_certificate true\n",
        allow_anonymous=False,
        password_file=pw,
    )
    secret = tmp_path / "mqtt.pass"
    secret.write_text("s3cret\n")
    tls = {
        "ca_file": str(tmp_path / "ca.crt"),
        "cert_file": str(tmp_path / "client.crt"),
        "key_file": str(tmp_path / "client.key"),
    }
    src, queue, signals = make(
        {
            "port": tls_port,
            "username": "plant",
            "password_file": str(secret),
            "tls": tls,
            "client_id": "emgate-tls-test",
            "subscriptions": subs(unique_topic),
        }
    )
    async with src:
        task = asyncio.create_task(src.run())
        await asyncio.to_thread(broker.wait_for_subscription, f"{unique_topic}/lp")
        await publish(broker, [(f"{unique_topic}/meter/m", b"5.5")], username="plant", password="s3cret")
        assert await values(queue, signals, 1) == [("power", 5.5, SampleQuality.GOOD)]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    wrong, _, _ = make(
        {
            "port": tls_port,
            "username": "plant",
            "password": "nope",
            "tls": tls,
            "subscriptions": subs(unique_topic),
        }
    )
    with pytest.raises(SourceUnavailable, match="connect failed"):
        async with wrong:
            pass
    no_cert, _, _ = make(
        {
            "port": tls_port,
            "username": "plant",
            "password": "s3cret",
            "tls": {"ca_file": tls["ca_file"]},
            "subscriptions": subs(unique_topic),
        }
    )
    with pytest.raises(SourceUnavailable):
        async with no_cert:
            pass


async def test_gateway_runs_one_supervised_task_per_broker(
    mosquitto: MosquittoService, unique_topic: str, tmp_path: Path
) -> None:
    from gateway.pipeline import Gateway

    settings = site_settings(
        "t",
        signals={"power": {"unit": "kW"}},
        ledger={"path": str(tmp_path / "l.sqlite")},
        mqtt={
            "brokers": [
                {
                    "name": n,
                    "port": mosquitto.port,
                    "subscriptions": [
                        {"topic": f"{unique_topic}/{n}", "format": "number", "signal": "power"}
                    ],
                }
                for n in ("one", "two")
            ]
        },
    )
    gw = Gateway.build(settings)
    task = asyncio.create_task(gw.run())
    try:
        for n in ("one", "two"):
            await asyncio.to_thread(mosquitto.wait_for_subscription, f"{unique_topic}/{n}")
        await publish(mosquitto, [(f"{unique_topic}/one", b"1"), (f"{unique_topic}/two", b"2")])
        deadline = time.monotonic() + 10
        while sum(s.counters.samples for s in gw.mqtt_sources) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        names = {t.get_name() for t in asyncio.all_tasks()}
        assert {"mqtt[one]", "mqtt[two]"} <= names
        assert {"mqtt[one]", "mqtt[two]"} <= set(gw.health.components)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gw.close()


async def test_two_plants_with_the_same_broker_name_keep_their_connections(
    mosquitto: MosquittoService, unique_topic: str
) -> None:
    # Two sites name their broker alike ("plant-broker" on one shared Mosquitto). With a client
    # id of the broker name alone the broker disconnected the first whenever the second connected.
    sources = []
    for site in ("plant-a", "plant-b"):
        settings = site_settings(
            site,
            signals={"power": {"unit": "kW"}},
            mqtt={
                "brokers": [
                    {
                        "name": "plant-broker",
                        "port": mosquitto.port,
                        "subscriptions": [{"topic": f"{unique_topic}/{site}", "format": "number", "signal": "power"}],
                    }
                ]
            },
        )
        queue: asyncio.Queue[SampleBatch] = asyncio.Queue(maxsize=100)
        signals = SignalTable.from_settings(settings)
        src = MqttSource(
            settings.mqtt.brokers[0], signals, queue, SystemClock(), ComponentHealth("mqtt[plant-broker]"), site=site
        )
        sources.append((src, queue, signals))
    assert [s.client_id for s, _, _ in sources] == ["emgate-plant-a-plant-broker", "emgate-plant-b-plant-broker"]
    a, b = sources[0][0], sources[1][0]
    async with a, b:
        tasks = [asyncio.create_task(s.run()) for s in (a, b)]
        for site in ("plant-a", "plant-b"):
            await asyncio.to_thread(mosquitto.wait_for_subscription, f"{unique_topic}/{site}")
        await publish(mosquitto, [(f"{unique_topic}/plant-a", b"1.5"), (f"{unique_topic}/plant-b", b"2.5")])
        got_a = await values(sources[0][1], sources[0][2], 1)
        got_b = await values(sources[1][1], sources[1][2], 1)
        await asyncio.sleep(0.5)
        assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert got_a == [("power", 1.5, 0)] and got_b == [("power", 2.5, 0)]
    assert a.counters.connects == 1 and b.counters.connects == 1
