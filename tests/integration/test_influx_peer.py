"""InfluxSink against a scripted in-process HTTP peer at the same seam as InfluxDB's /api/v2/write.

A real influxd will not answer 429 or 503 with Retry-After on demand, nor refuse a chosen row;
this peer does, so retry timing, quarantine and ordering are checked against real HTTP.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

import pytest
from aiohttp import web

from gateway.core.errors import SinkWriteError
from gateway.ledger.store import Ledger
from gateway.settings.site import InfluxConfig, RetryConfig
from gateway.sinks.influx import CURSOR, InfluxSink, parse_retry_after
from tests.factories import minute_result as result
from tests.factories import results_of

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-token-do-not-log-7f1e"


@dataclass
class Peer:
    url: str = ""
    # each scripted reply: (status, headers, body) or a callable(lines) -> that tuple or None (accept)
    script: list[object] = field(default_factory=list)
    default: Callable[[list[str]], tuple[int, dict[str, str], str] | None] | None = None
    requests: list[tuple[float, list[str], dict[str, str]]] = field(default_factory=list)
    stored: dict[str, str] = field(default_factory=dict)  # series+time -> line (what a server keeps)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()

    async def write(request: web.Request) -> web.Response:
        lines = [ln for ln in (await request.text()).split("\n") if ln]
        p.requests.append((time.monotonic(), lines, dict(request.headers)))
        reply = p.script.pop(0) if p.script else p.default
        if callable(reply):
            reply = reply(lines)
        if reply is not None:
            status, headers, body = reply  # type: ignore[misc]
            return web.json_response({"code": "error", "message": body}, status=status, headers=headers)
        for ln in lines:
            key = ln.split(" ")[0] + "@" + ln.rsplit(" ", 1)[1]
            p.stored[key] = ln
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    p.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield p
    await runner.cleanup()


def make_sink(peer: Peer, ledger: Ledger, batch_size: int = 100) -> InfluxSink:
    cfg = InfluxConfig(enabled=True, url=peer.url, token=SECRET, batch_size=batch_size, timeout_s=5)
    return InfluxSink(cfg, ledger, RetryConfig(base_s=0.05, cap_s=0.2))


async def run_until(sink: InfluxSink, done: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async with sink:
        task = asyncio.create_task(sink.run(), name="influx-test")
        try:
            async with asyncio.timeout(timeout_s):
                while not done():
                    sink.notify()
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    lg = Ledger(tmp_path / "ledger.sqlite")
    yield lg
    lg.close()


async def test_429_and_503_honour_retry_after(peer: Peer, ledger: Ledger) -> None:
    ledger.append(results_of([result(m) for m in range(3)]))
    peer.script = [
        (429, {"Retry-After": "1"}, "slow down"),
        lambda _: (503, {"Retry-After": formatdate(time.time() + 2, usegmt=True)}, "busy"),
    ]
    sink = make_sink(peer, ledger)
    await run_until(sink, lambda: ledger.outbox.cursor(CURSOR) == ledger.head_seq)
    t = [r[0] for r in peer.requests]
    assert len(t) == 3
    assert t[1] - t[0] >= 1.0  # waited the 429's Retry-After (plus at most 10 % jitter)
    assert t[1] - t[0] < 1.5
    assert t[2] - t[1] >= 1.0  # the HTTP-date form: at least one whole second ahead when sent
    assert len(peer.stored) == 3 and sink.counters.batches_failed == 2 and sink.counters.quarantined_rows == 0


async def test_unreachable_then_up_uses_jittered_backoff(tmp_path: Path, ledger: Ledger) -> None:
    ledger.append(results_of([result(0)]))
    cfg = InfluxConfig(enabled=True, url="http://127.0.0.1:9", token=SECRET, timeout_s=1)
    sink = InfluxSink(cfg, ledger, RetryConfig(base_s=0.05, cap_s=0.2))
    async with sink:
        task = asyncio.create_task(sink.run())
        await asyncio.sleep(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sink.counters.batches_failed >= 4  # backoff capped at 0.2 s: several attempts, none lost
    assert sink.counters.failing and "unreachable" in sink.counters.last_error
    assert ledger.outbox.cursor(CURSOR) == 0 and sink.counters.backlog == 1


async def test_refused_rows_are_quarantined_and_the_rest_written(peer: Peer, ledger: Ledger) -> None:
    ledger.append(results_of([result(m, process=("poison" if m in (3, 11) else "sinter")) for m in range(16)]))

    def refuse_poison(lines: list[str]) -> tuple[int, dict[str, str], str] | None:
        if any("process=poison" in ln for ln in lines):
            return (400, {}, 'partial write: field type conflict: input field "co2_kg" is type string')
        return None

    peer.default = refuse_poison
    sink = make_sink(peer, ledger, batch_size=16)
    await run_until(sink, lambda: ledger.outbox.cursor(CURSOR) == ledger.head_seq)
    assert len(peer.stored) == 14
    q = ledger.outbox.quarantined("influx")
    assert [(x["first_seq"], x["status"]) for x in q] == [(4, 400), (12, 400)]
    assert "field type conflict" in str(q[0]["message"])
    assert sink.counters.quarantined_rows == 2
    # refused once each, never retried forever: a finite number of requests
    assert len(peer.requests) < 16


async def test_auth_failure_is_retried_not_quarantined(
    peer: Peer, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.append(results_of([result(0), result(1)]))
    peer.script = [(401, {}, "unauthorized access")] * 3
    sink = make_sink(peer, ledger)
    with caplog.at_level(logging.DEBUG):
        await run_until(sink, lambda: ledger.outbox.cursor(CURSOR) == ledger.head_seq)
    assert len(peer.stored) == 2 and not ledger.outbox.quarantined()
    assert any("401" in r.getMessage() and "token" in r.getMessage() for r in caplog.records)
    # the token went to the server, and nowhere into the logs
    assert peer.requests[0][2]["Authorization"] == f"Token {SECRET}"
    assert all(SECRET not in r.getMessage() and SECRET not in str(r.args) for r in caplog.records)


async def test_live_minutes_are_not_starved_by_a_backlog(peer: Peer, ledger: Ledger) -> None:
    ledger.append(results_of([result(m) for m in range(100)]))  # a backlog of 10 batches
    sink = make_sink(peer, ledger, batch_size=10)
    async with sink:
        await sink.drain_once()  # one step: max_batches (4) batches of backlog
        assert len(peer.requests) == sink.max_batches
        ledger.append(results_of([result(1000, "live", "now")]))  # a minute closes while the backlog drains
        await sink.drain_once()
        live = [
            i for i, (_, lines, _) in enumerate(peer.requests) if any("process=live" in ln for ln in lines)
        ]
        assert live == [4], "the live minute waited behind the backlog"
        assert sink.counters.backlog == 100 - 80 and sink.counters.live_points == 1
        while await sink.drain_once():
            pass
    backlog_order = [
        int(ln.rsplit(" ", 1)[1]) for _, lines, _ in peer.requests for ln in lines if "process=live" not in ln
    ]
    assert backlog_order == sorted(backlog_order), "the backlog drains oldest first"
    assert len(peer.stored) == 101 and sink.counters.backlog == 0
    assert (
        ledger.outbox.cursor(CURSOR) == ledger.head_seq and ledger.outbox.cursor("influx_live_mark") == 0
    )  # cursors joined


async def test_only_the_current_view_reaches_influx(peer: Peer, ledger: Ledger) -> None:
    ledger.append(results_of([result(0, co2_kg=1.0), result(1, co2_kg=1.0)]))
    ledger.correct([(1, result(0, co2_kg=2.0))], "late samples")
    sink = make_sink(peer, ledger)
    await run_until(sink, lambda: ledger.outbox.cursor(CURSOR) == ledger.head_seq)
    written = [ln for _, lines, _ in peer.requests for ln in lines]
    assert len(written) == 2 and all("co2_kg=1.0," not in ln or "coke_breeze" in ln for ln in written)
    assert sorted("co2_kg=2.0," in ln for ln in written) == [False, True]


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 9 <= parse_retry_after(formatdate(1000.0 + 10, usegmt=True), now=1000.0) <= 10  # type: ignore[operator]
    assert parse_retry_after("999999") == 3600.0


async def test_token_from_file_is_used_and_never_logged(
    peer: Peer, ledger: Ledger, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "influx.token"
    token_file.write_text(SECRET + "\n")
    token_file.chmod(0o600)
    ledger.append(results_of([result(0)]))
    # a misbehaving proxy that echoes the Authorization header in its error
    peer.script = [
        lambda lines: (401, {}, f"bad credentials: Token {SECRET}"),
        (503, {"Retry-After": "0"}, "warming up"),
    ]
    cfg = InfluxConfig(enabled=True, url=peer.url, token_file=token_file, timeout_s=5)
    sink = InfluxSink(cfg, ledger, RetryConfig(base_s=0.05, cap_s=0.2))
    with caplog.at_level(logging.DEBUG):
        await run_until(sink, lambda: ledger.outbox.cursor(CURSOR) == ledger.head_seq)
        logging.getLogger("test").info("settings: %s", cfg)  # what a careless "print the config" would log
    assert peer.requests[-1][2]["Authorization"] == f"Token {SECRET}"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "bad credentials: Token <token>" in text
    assert SECRET not in text


async def test_unreadable_token_file_fails_at_start_naming_the_file(ledger: Ledger, tmp_path: Path) -> None:
    cfg = InfluxConfig(enabled=True, token_file=tmp_path / "nope.token")
    with pytest.raises(Exception, match=r"token_file: cannot read .*nope\.token"):
        async with InfluxSink(cfg, ledger, RetryConfig()):
            pass


async def test_a_failure_among_overlapping_requests_keeps_the_cursor_honest(
    peer: Peer, ledger: Ledger
) -> None:
    ledger.append(results_of([result(m) for m in range(40)]))
    sink = make_sink(peer, ledger, batch_size=10)
    peer.script = [None, (503, {}, "overloaded")]  # batch 1 accepted, batch 2 refused for now
    async with sink:
        with pytest.raises(SinkWriteError):
            await sink.drain_once()
        assert ledger.outbox.cursor(CURSOR) == 10  # only what was acknowledged in order
        while await sink.drain_once():
            pass
    assert ledger.outbox.cursor(CURSOR) == 40 and len(peer.stored) == 40
