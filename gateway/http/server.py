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

Access ([http] of the site file, gateway.settings.site.HttpConfig). The page shows the plant's
figures, so on an address other than loopback it refuses to start (ConfigError: exit 2) without
an access token (`token_file`) or an explicit `insecure_no_auth = true`. With a token, every path
but /healthz wants `Authorization: Bearer <token>` or the cookie that opening `/?token=<token>`
once sets (HttpOnly, SameSite=Strict; it holds a digest of the token, not the token). With
`cert_file` and `key_file` it serves HTTPS. Every response carries the security headers below;
at most `max_event_clients` event streams are open at once (the next one gets 503). Nothing here
serves a file but the page and its script, and no view shows a setting beyond the site's name.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import ssl
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
from gateway.settings.site import HttpConfig, http_access_problem, is_loopback_host
from gateway.settings.tls import read_secret_file

log = logging.getLogger(__name__)

_SECURITY_HEADERS = {
    # the page's one <style> block is inline; scripts come from 'self' only
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # figures and the token's cookie stay out of shared and disk caches
}
COOKIE = "emgate_token"
_OPEN_PATHS = frozenset({"/healthz"})  # a liveness probe carries no token and learns nothing
MIN_TOKEN_CHARS = 16


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
        access: token, TLS and client limits; default the site's [http] (gw.settings.http).

    Raises:
        ConfigError: on entry, when `bind` is malformed, reachable from other machines without a
            token or `insecure_no_auth`, the token or certificate files cannot be used, or the port is taken.
    """

    def __init__(
        self,
        gw: GatewayView,
        bind: str,
        history: MinuteHistory,
        *,
        interval_s: float = 1.0,
        access: HttpConfig | None = None,
    ) -> None:
        self._gw = gw
        self._bind = bind
        self._host, self._port = parse_bind(bind)
        self._interval_s = interval_s
        self._access = access if access is not None else gw.settings.http
        self.history = history
        self.hub = EventHub(max_subscribers=self._access.max_event_clients)
        self._registry = gateway_registry(gw, self.history, sse_clients=lambda: self.hub.subscribers)
        self._runner: web.AppRunner | None = None
        self._token: bytes | None = None
        self._cookie = ""
        self._tls: ssl.SSLContext | None = None
        self.port = self._port
        self.url = ""
        self.refused_requests = 0  # without a valid token

    def snapshot(self) -> dict[str, Any]:
        return build_snapshot(self._gw, self.history)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorize])
        app.on_response_prepare.append(_security_headers)
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

    def _prepare_access(self) -> None:
        """Check the access rules of `bind` and load the token and certificate; ConfigError if unusable."""
        access = self._access
        problem = http_access_problem(self._bind, access.token_file is not None, access.insecure_no_auth)
        if problem:
            raise ConfigError(f"status page: {problem}")
        if access.token_file is not None:
            try:
                token = read_secret_file(access.token_file, "http.token_file")
            except ValueError as exc:
                raise ConfigError(f"status page: {exc}") from None
            if not token:
                raise ConfigError(f"status page: http.token_file {access.token_file} is empty; write a long random token into it")
            if len(token) < MIN_TOKEN_CHARS:
                log.warning(
                    "status page: the token in %s has %d characters; use at least %d random ones (e.g. openssl rand -hex 24)",
                    access.token_file,
                    len(token),
                    MIN_TOKEN_CHARS,
                )
            self._token = token.encode()
            self._cookie = hmac.new(self._token, b"emgate status page cookie", hashlib.sha256).hexdigest()
        if access.cert_file is not None and access.key_file is not None:
            try:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(str(access.cert_file), str(access.key_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"status page: cannot load http.cert_file {access.cert_file} with key_file {access.key_file}: {exc}; "
                    "check that both are PEM, match and are readable"
                ) from None
            self._tls = ctx

    @web.middleware
    async def _authorize(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """With a token: a valid bearer header or cookie, or `/?token=` once (then a clean redirect)."""
        if self._token is None or request.path in _OPEN_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token):
            return await handler(request)
        if hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), self._cookie.encode()):
            return await handler(request)
        query_token = request.query.get("token")
        if request.path == "/" and query_token is not None and hmac.compare_digest(query_token.encode(), self._token):
            # the token leaves the address bar and the history: the cookie carries the session
            resp = web.Response(status=303, headers={"Location": "/"})
            resp.set_cookie(COOKIE, self._cookie, path="/", httponly=True, samesite="Strict", secure=self._tls is not None)
            return resp
        self.refused_requests += 1
        return web.Response(
            status=401,
            text="401: this status page needs its access token: open /?token=<token> once, "
            "or send 'Authorization: Bearer <token>' (the token is in the file [http] token_file names)\n",
            headers={"WWW-Authenticate": 'Bearer realm="emgate"'},
        )

    async def __aenter__(self) -> Self:
        self._prepare_access()
        # access_log=None: a line per Prometheus scrape or page load is noise, not a state change
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._tls)
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
        self.url = f"{'https' if self._tls is not None else 'http'}://{host}:{self.port}/"
        if self._token is not None:
            guard = "access token required"
        elif self._access.insecure_no_auth and not is_loopback_host(self._host):
            guard = "NO access token (insecure_no_auth = true): anyone who reaches the port sees the page"
        else:
            guard = "loopback only"
        log.info("status page on %s (metrics at %smetrics; %s)", self.url, self.url, guard)
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


async def _security_headers(_request: web.Request, resp: web.StreamResponse) -> None:
    """Before any response's headers go out (pages, JSON, errors and event streams alike)."""
    resp.headers.update(_SECURITY_HEADERS)
