"""Ledger -> InfluxDB, through durable cursors: the ledger is the outbox.

Theory of operation. The sink reads ledger rows after its cursor ("influx" in table cursors),
writes them in batches with the async client, and moves the cursor only after InfluxDB
acknowledged the batch. A crash between the write and the cursor update repeats the batch,
which is harmless: a point is keyed by measurement, tags (site, process, stream, scope,
activity_unit) and the minute's timestamp (second precision), so writing it again overwrites
it with the same values.
Only current rows are written (a superseded row is skipped, its correction follows later in the
ledger), so InfluxDB always ends up holding the current view. The sink reads through the
ledger's outbox (gateway/ledger/outbox.py: cursors, rows, quarantine) and has the points written
by gateway/codec/lineproto.py (MinutePointEncoder: what a point holds and why).

Outage and backlog. Nothing waits in memory: while InfluxDB is away the backlog is the ledger
rows past the cursor, on disk. It costs no space beyond the ledger itself, so its bound is the
ledger's, and the policy is stated: the ledger is never dropped to make room, and no row is
skipped for InfluxDB because it waited long; `counters.backlog` (rows not yet delivered) is
there for the status page. When InfluxDB returns, the backlog drains oldest first without
starving live minutes: once the backlog is more than one batch, the sink marks the ledger head
("influx_live_mark") and from then on each step writes the rows newer than the mark first (live
minutes, cursor "influx_live"), then up to `max_batches` batches of backlog up to the mark.
When the backlog reaches the mark the two cursors join. Backlog batches overlap
(`max_in_flight` requests), so the next batch is read and encoded while InfluxDB ingests one;
a cursor moves past a batch only when it and every batch before it were acknowledged, so a
crash resumes either phase without a gap.

Errors. 429 and 503 wait for Retry-After when the server sends it (seconds or an HTTP date),
408, other 5xx and connection failures wait a full-jitter backoff; none of these skip data.
400, 413 and 422 mean the data is refused: the batch is split in halves until the refused rows
are found, and those rows are quarantined (table quarantine: seqs, status, the server's message),
counted, and passed; the good rows of the batch are written. 401, 403 and 404 (token, rights,
database) are configuration problems, not bad data: they are retried with backoff and reported,
never quarantined, so fixing the token delivers everything. Anything else the client raises (a
request aiohttp refuses to build, say) is a failed write too: retried, never the end of the
gateway. The token is never logged, and `url` holds no credentials (InfluxConfig moves a
`user:password@` of the URL into the token).

Health. The sink keeps its health component ("influx": the status page's device list,
`emgate_component_up{kind="influx"}` and the device alert): down at the first failed write or
ping, up again at the next acknowledged write or answered ping. With nothing to write it asks
InfluxDB's /ping every `IDLE_PING_S`, and after a failure it pings rather than wait for the next
minute, so an outage and the recovery show while no row is waiting.

TLS. An https URL is checked against the system's CAs or `ca_file`, name included, unless
`verify_tls = false` (logged as a warning at start).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import re
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.alerts.influx_lines import ALERT_CURSOR, alert_lines, seal_lines
from gateway.codec.lineproto import MinutePointEncoder
from gateway.core.clock import Clock, SystemClock
from gateway.core.errors import ConfigError, SinkWriteError, TransientError
from gateway.core.health import ComponentHealth
from gateway.ledger.store import Ledger
from gateway.settings.site import InfluxConfig, RetryConfig

if TYPE_CHECKING:
    from influxdb_client.client.exceptions import InfluxDBError
    from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

log = logging.getLogger(__name__)

CURSOR = "influx"
LIVE_MARK = "influx_live_mark"
LIVE_CURSOR = "influx_live"
SINK = "influx"
_DATA_REFUSED = frozenset((400, 413, 422))
_MAX_RETRY_AFTER_S = 3600.0
IDLE_PING_S = 30.0  # with nothing to write, ask /ping this often: the health stays true without traffic


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return min(_MAX_RETRY_AFTER_S, max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return min(_MAX_RETRY_AFTER_S, max(0.0, when - (time.time() if now is None else now)))


@dataclass
class InfluxCounters:
    points_written: int = 0
    batches_written: int = 0
    batches_failed: int = 0  # attempts that will be retried
    quarantined_rows: int = 0
    quarantined_batches: int = 0
    backlog: int = 0  # ledger rows not yet delivered (or quarantined)
    live_points: int = 0  # points written ahead of the backlog while catching up
    failing: bool = False  # the last attempt failed; results wait in the ledger
    last_error: str = ""  # what the last failure said (never contains the token)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class InfluxSink:
    """Drains the ledger into InfluxDB; `notify()` after each append wakes it.

    Args:
        cfg: the [influx] section.
        ledger: the outbox.
        retry: the backoff after a failed write.
        health: the "influx" component, down while writes or pings fail (a private one if None).
        clock: stamps the health's last good contact.
    """

    #: batches one drain step writes, and how many requests may be in flight at once
    max_batches = 4
    max_in_flight = 2

    def __init__(
        self,
        cfg: InfluxConfig,
        ledger: Ledger,
        retry: RetryConfig,
        *,
        health: ComponentHealth | None = None,
        clock: Clock | None = None,
    ) -> None:
        try:  # read once at startup: an unreadable token_file stops `emgate run` with exit 2, not a task later
            cfg.token_value()
            _ssl_options(cfg)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if cfg.url.startswith("https:") and not cfg.verify_tls:
            log.warning(
                "influx %s: verify_tls = false: the server's certificate is not checked, so anyone on the path can "
                "read the token and the data; set influx.ca_file to the CA that signs it instead",
                cfg.url,
            )
        self.health = health if health is not None else ComponentHealth(SINK)
        self._clock = clock or SystemClock()
        self._last_contact = -float("inf")  # monotonic time of the last answered write or ping
        self._cfg, self._ledger, self._retry = cfg, ledger, retry
        self._wake = asyncio.Event()
        self.counters = InfluxCounters()
        self._client: InfluxDBClientAsync | None = None
        self._failing = False
        self._encoder = MinutePointEncoder(cfg.measurement)
        self._token = ""

    def notify(self) -> None:
        self._wake.set()

    async def __aenter__(self) -> InfluxSink:
        try:
            token = self._cfg.token_value()
        except ValueError as exc:  # token_file unreadable: says which file, never its content
            # readable at startup (__init__), not now: retried like a lost peer, never the end of the gateway
            raise TransientError(f"influx {self._cfg.url}: {exc}") from None
        self._token = token
        # influxdb-client is imported on first use, not with this module: `emgate run` loads its
        # settings first, and the client's ~500 modules then reuse heap the parsed config left
        # free: 5.5 MB less resident memory at 10,000 signals (bench.load_10k's config).
        InfluxDBClientAsync, _, _ = _client_api()
        try:
            self._client = InfluxDBClientAsync(
                url=self._cfg.url,
                token=token,
                org=self._cfg.org,
                timeout=int(self._cfg.timeout_s * 1000),
                enable_gzip=False,
                **_ssl_options(self._cfg),
            )
        except (OSError, ValueError, ssl.SSLError) as exc:  # ca_file unreadable or not PEM since the start
            raise TransientError(f"influx {self._cfg.url}: cannot prepare TLS ({exc}); check influx.ca_file") from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.shield(client.close())

    async def run(self) -> None:
        """Drain forever: returns only when cancelled. Waits and retries on every write failure."""
        attempt = 0
        while True:
            try:
                drained = await self.drain_once()
                if not drained and (self._failing or time.monotonic() - self._last_contact >= IDLE_PING_S):
                    await self.ping()  # nothing written: no evidence either way, so ask
            except SinkWriteError as exc:
                self.counters.batches_failed += 1
                self.counters.failing, self.counters.last_error = True, str(exc)
                # the health component logs the state change once ("influx: lost: ..."), not every retry
                self.health.failed(f"influx {self._cfg.url}: {exc} (results wait in the ledger; backlog {self.counters.backlog})")
                self._failing = True
                cap = min(self._retry.cap_s, self._retry.base_s * 2 ** min(attempt, 16))
                if exc.retry_after is not None:  # the server said when; a little jitter spreads gateways out
                    delay = exc.retry_after + random.uniform(0, min(1.0, 0.1 * exc.retry_after))
                else:
                    delay = random.uniform(0, cap)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if self._failing:  # the health component logged "influx: recovered after N failed attempt(s)"
                log.info("influx %s: writing again; backlog %d", self._cfg.url, self.counters.backlog)
                self._failing = False
            self.counters.failing = False
            attempt = 0
            if not drained:
                self._wake.clear()
                try:
                    async with asyncio.timeout(5.0):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    # -- one step -------------------------------------------------------------------------------
    async def drain_once(self) -> int:
        """Write up to `max_batches` batches (and, while catching up, a live batch first).

        Returns the points written; raises SinkWriteError when InfluxDB is unreachable or asks
        us to wait (the cursors then stand after the last acknowledged batch).
        """
        assert self._client is not None, "enter the sink before running it"
        outbox, n = self._ledger.outbox, self._cfg.batch_size
        cursor = outbox.cursor(CURSOR)
        mark = outbox.cursor(LIVE_MARK)
        if not mark and self._ledger.head_seq - cursor > n:
            mark = self._ledger.head_seq  # backlog of more than one batch: from now on live rows go first
            outbox.set_cursors({LIVE_MARK: mark, LIVE_CURSOR: mark})
        self._update_backlog()
        written = 0
        if mark:
            w = await self._deliver(outbox.cursor(LIVE_CURSOR), None, LIVE_CURSOR, 1)
            self.counters.live_points += w
            written += w
            w = await self._deliver(cursor, mark, CURSOR, self.max_batches)
            written += w
            if outbox.cursor(CURSOR) >= mark:
                # the backlog reached the mark: everything up to the live cursor is delivered
                outbox.set_cursors({CURSOR: outbox.cursor(LIVE_CURSOR), LIVE_MARK: 0, LIVE_CURSOR: 0})
        else:
            written += await self._deliver(cursor, None, CURSOR, self.max_batches)
        written += await self._deliver_alerts()
        written += await self._deliver_seals()
        self._update_backlog()
        return written

    async def _deliver_seals(self) -> int:
        """The ledger's daily seals InfluxDB has not acknowledged (a witness of the head, gateway/ledger/seals.py)."""
        outbox = self._ledger.outbox
        seals = outbox.unsent_seals()
        if not seals:
            return 0
        try:
            await self._write(seal_lines([payload for _, payload in seals]))
        except _Refused as exc:
            log.error("influx %s: %d seal(s) refused and skipped: %s", self._cfg.url, len(seals), exc)
        outbox.mark_seals_sent([day for day, _ in seals])
        return len(seals)

    async def _deliver_alerts(self) -> int:
        """Alert events past their own cursor (gateway/alerts/influx_lines.py)."""
        outbox = self._ledger.outbox
        events = outbox.alert_events(outbox.cursor(ALERT_CURSOR), self._cfg.batch_size)
        if not events:
            return 0
        try:
            await self._write(alert_lines(events))
        except _Refused as exc:  # an event InfluxDB will never take must not block the others
            log.error("influx %s: %d alert event(s) refused and skipped: %s", self._cfg.url, len(events), exc)
        outbox.set_cursors({ALERT_CURSOR: events[-1].seq})
        return len(events)

    def _update_backlog(self) -> None:
        outbox = self._ledger.outbox
        mark = outbox.cursor(LIVE_MARK)
        live_done = outbox.cursor(LIVE_CURSOR) - mark if mark else 0
        self.counters.backlog = max(0, self._ledger.head_seq - outbox.cursor(CURSOR) - live_done)

    async def _deliver(self, after: int, upto: int | None, cursor: str, max_batches: int) -> int:
        """Write batches after `after` (up to `upto`), `max_in_flight` at a time, moving `cursor`
        past each batch once it and every batch before it are acknowledged.

        Overlapping requests keep both sides busy: the next batch is read and encoded here while
        InfluxDB ingests the previous one.
        """
        written = 0
        inflight: deque[tuple[int, asyncio.Task[int]]] = deque()
        try:
            for _ in range(max_batches):
                rows, superseded = self._ledger.outbox.rows(after, self._cfg.batch_size, upto)
                if not rows:
                    break
                after = rows[-1][0]
                current = [r for r in rows if r[0] not in superseded] if superseded else rows
                inflight.append((after, asyncio.create_task(self._write_splitting(current), name="influx-write")))
                await asyncio.sleep(0)  # let the request go out before encoding the next batch
                while len(inflight) >= self.max_in_flight or (inflight and inflight[0][1].done()):
                    seq, task = inflight.popleft()
                    written += await task
                    self._ledger.outbox.set_cursors({cursor: seq})
            while inflight:
                seq, task = inflight.popleft()
                written += await task
                self._ledger.outbox.set_cursors({cursor: seq})
        finally:
            for _, task in inflight:  # after a failure: later batches may land too, which is harmless
                task.cancel()
            if inflight:
                await asyncio.gather(*(t for _, t in inflight), return_exceptions=True)
        return written

    async def _write_splitting(self, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        try:
            await self._write(self._encoder.lines(rows))
        except _Refused as refused:
            if len(rows) > 1:
                mid = len(rows) // 2
                return await self._write_splitting(rows[:mid]) + await self._write_splitting(rows[mid:])
            seq = int(rows[0][0])
            self._ledger.outbox.quarantine(SINK, seq, seq, 1, refused.status, refused.message)
            self.counters.quarantined_rows += 1
            self.counters.quarantined_batches += 1
            log.warning(
                "influx %s: row %d quarantined: HTTP %d %s",
                self._cfg.url,
                seq,
                refused.status,
                refused.message,
            )
            return 0
        self.counters.points_written += len(rows)
        self.counters.batches_written += 1
        return len(rows)

    def _contact(self) -> None:
        """InfluxDB answered a write or a ping: the component is up."""
        self._last_contact = time.monotonic()
        self.health.succeeded(self._clock.now())

    async def ping(self) -> None:
        """Ask InfluxDB's /ping; raises SinkWriteError when it does not answer within timeout_s."""
        assert self._client is not None, "enter the sink before pinging"
        try:
            async with asyncio.timeout(self._cfg.timeout_s):
                await self._client.ping()
        except Exception as exc:  # connection refused, TLS, timeout, an HTTP error: all mean "not there"
            raise SinkWriteError(
                f"ping failed: {type(exc).__name__}: {_scrub(str(exc), self._token)}; check influx.url and that InfluxDB is up",
                retryable=True,
            ) from exc
        self._contact()

    async def _write(self, body: str) -> None:
        assert self._client is not None
        _, InfluxDBError, WritePrecision = _client_api()
        try:
            await self._client.write_api().write(
                bucket=self._cfg.bucket, org=self._cfg.org, record=body, write_precision=WritePrecision.S
            )
            self._contact()
        except InfluxDBError as exc:
            status = getattr(exc, "status", None)
            if status is None and exc.response is not None:
                status = getattr(exc.response, "status", None)
            message = _server_message(exc, self._token)
            if status in _DATA_REFUSED:
                raise _Refused(int(status), message) from exc
            retry_after = parse_retry_after(getattr(exc, "retry_after", None)) if status in (429, 503) else None
            hint = (
                " (check influx.token / token_file, the user's rights and that the database exists)"
                if status in (401, 403, 404)
                else ""
            )
            raise SinkWriteError(
                f"write answered HTTP {status}: {message}{hint}", retryable=True, retry_after=retry_after
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise SinkWriteError(
                f"unreachable: {type(exc).__name__}: {_scrub(str(exc), self._token)}; check influx.url and that InfluxDB is up",
                retryable=True,
            ) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("aiohttp"):  # its own ClientError tree (not all are OSError)
                raise SinkWriteError(
                    f"unreachable: {type(exc).__name__}: {_scrub(str(exc), self._token)}; "
                    "check influx.url and that InfluxDB is up",
                    retryable=True,
                ) from exc
            # e.g. a ValueError for a request aiohttp will not build: the write failed, the gateway goes on
            raise SinkWriteError(
                f"write failed: {type(exc).__name__}: {_scrub(str(exc), self._token)}; check the [influx] settings",
                retryable=True,
            ) from exc


def _ssl_options(cfg: InfluxConfig) -> dict[str, Any]:
    """influxdb-client's TLS options (verify_ssl, ssl_ca_cert) for the [influx] section.

    Raises:
        ValueError: `ca_file` cannot be read (naming it and the key).
    """
    if cfg.ca_file is not None:
        try:
            with cfg.ca_file.open("rb"):
                pass
        except OSError as exc:
            raise ValueError(
                f"influx.ca_file: cannot read {cfg.ca_file}: {exc.strerror}; check the path and its permissions"
            ) from None
    return {"verify_ssl": cfg.verify_tls, "ssl_ca_cert": str(cfg.ca_file) if cfg.ca_file is not None else None}


def _client_api() -> tuple[Any, Any, Any]:
    """influxdb-client's async client, error class and precision enum, imported on first use."""
    from influxdb_client import WritePrecision
    from influxdb_client.client.exceptions import InfluxDBError
    from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

    return InfluxDBClientAsync, InfluxDBError, WritePrecision


def _server_message(exc: InfluxDBError, token: str) -> str:
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    # a proxy or server that echoes the Authorization header must not put the token in our log
    return _scrub(str(message).strip()[:2000], token)


_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


def _scrub(text: str, token: str) -> str:
    """`text` without the token, the password of a user:password token, or a URL's user:password@."""
    if token:
        text = text.replace(token, "<token>")
        _, colon, password = token.partition(":")
        if colon and len(password) >= 4:
            text = text.replace(password, "<password>")
    return _USERINFO.sub("***@", text)
