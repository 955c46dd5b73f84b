"""StatusServer: the status page, its event stream, a JSON snapshot and /metrics on one port.

    GET /             the page (page.html + page.js, package files: no build step, no CDN)
    GET /events       server-sent events: `snapshot` every `interval_s` while anything changed
    GET /api/status   the same snapshot as JSON
    GET /metrics      Prometheus text format (gateway.http.metrics)
    GET /healthz      200 "ok" while the process serves

Lifetime: `async with StatusServer(gw, bind, history) as server` binds the socket (a busy port
fails there, before the pipeline starts); `server.run()` publishes updates from the gateway's
TaskGroup; leaving the block ends open event streams and closes the port. The pipeline does both
(gateway.pipeline.Gateway.status_page).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.core.errors import ConfigError
from gateway.http.history import MinuteHistory
from gateway.http.metrics import gateway_registry
from gateway.http.sse import EventHub
from gateway.http.status import build_snapshot
from gateway.http.view import GatewayView

log = logging.getLogger(__name__)

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def parse_bind(value: str) -> tuple[str, int]:
    """'127.0.0.1:8080' or '[::1]:8080' -> (host, port). Raises ConfigError naming the value."""
    host, sep, port_s = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_s.isdigit() or not 0 <= int(port_s) < 65536:
        raise ConfigError(f"http bind {value!r}: expected HOST:PORT such as 127.0.0.1:8080")
    return host, int(port_s)


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _static(name: str, content_type: str) -> _Handler:
    """A handler serving one package file, read once (the page is a few kB)."""
    text = resources.files("gateway.http").joinpath(name).read_text(encoding="utf-8")

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(text=text, content_type=content_type, charset="utf-8")

    return handler


async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


class StatusServer:
    """Serves the status page for one Gateway.

    Args:
        gw: the gateway (gateway.pipeline.Gateway) as its views see it.
        bind: "HOST:PORT"; port 0 picks a free one (see `port` after entering).
        history: the MinuteHistory the gateway feeds with each closed minute.
        interval_s: real seconds between snapshot pushes.
    """

    def __init__(self, gw: GatewayView, bind: str, history: MinuteHistory, *, interval_s: float = 1.0) -> None:
        self._gw = gw
        self._host, self._port = parse_bind(bind)
        self._interval_s = interval_s
        self.history = history
        self.hub = EventHub()
        self._registry = gateway_registry(gw, self.history, sse_clients=lambda: self.hub.subscribers)
        self._runner: web.AppRunner | None = None
        self.port = self._port
        self.url = ""

    def snapshot(self) -> dict[str, Any]:
        return build_snapshot(self._gw, self.history)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_headers])
        app.router.add_get("/", _static("page.html", "text/html"))
        app.router.add_get("/page.js", _static("page.js", "text/javascript"))
        app.router.add_get("/events", self.hub.stream)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", _healthz)
        return app

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.snapshot(), dumps=lambda o: json.dumps(o, allow_nan=False))

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def __aenter__(self) -> Self:
        # access_log=None: a line per Prometheus scrape or page load is noise, not a state change
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError(
                f"status page: cannot listen on {self._host}:{self._port}: {exc.strerror or exc}; "
                "choose another --http HOST:PORT or stop what uses that port"
            ) from exc
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        host = f"[{self._host}]" if ":" in self._host else self._host
        self.url = f"http://{host}:{self.port}/"
        log.info("status page on %s (metrics at %smetrics)", self.url, self.url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.hub.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await asyncio.shield(runner.cleanup())

    async def run(self) -> None:
        """Publish a snapshot whenever something changed, at most every `interval_s`; runs until cancelled."""
        last: str | None = None
        while True:
            snap = self.snapshot()
            # devices' age_s moves with the clock, so in practice every interval sends a snapshot
            # and a silent device's "last good poll" visibly ages; an unchanged one is not re-sent
            key = json.dumps({k: v for k, v in snap.items() if k != "now"}, sort_keys=True, allow_nan=False)
            if key != last or self.hub.last is None:
                self.hub.publish("snapshot", snap)
                last = key
            await asyncio.sleep(self._interval_s)


@web.middleware
async def _headers(request: web.Request, handler: _Handler) -> web.StreamResponse:
    resp: web.StreamResponse = await handler(request)
    if not resp.prepared:  # an event stream sent its headers already (set in EventHub.stream)
        for k, v in _SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
    return resp
