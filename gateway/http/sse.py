"""Server-sent events: one hub, one bounded queue per connected page.

A slow or stalled browser never slows the gateway: each subscriber's queue holds a few events
and a full queue drops its oldest event (the next snapshot supersedes it anyway). Closing the
hub ends every stream, so shutdown does not wait on open pages. At most `max_subscribers` streams
are open at once: each holds a connection and a queue, and the next one is answered 503 with
Retry-After, so a forgotten wall of browser tabs (or a script) cannot pile them up.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

KEEPALIVE_S = 15.0
RETRY_AFTER_S = 30  # what a refused page's browser is told to wait


def format_event(event: str, data: Any) -> bytes:
    """One SSE frame; `data` is sent as one line of compact JSON."""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"event: {event}\ndata: {body}\n\n".encode()


class EventHub:
    """Fans events out to subscribers. Not thread-safe: publish from the event loop."""

    def __init__(self, queue_size: int = 4, max_subscribers: int = 32) -> None:
        self._queue_size = queue_size
        self.max_subscribers = max_subscribers
        self.refused = 0  # streams answered 503 because max_subscribers were open
        self._subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._closed = False
        self.last: bytes | None = None  # sent first to a new subscriber, so a page fills at once
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: str, data: Any) -> None:
        frame = format_event(event, data)
        self.last = frame
        for q in self._subscribers:
            if q.full():
                q.get_nowait()
                self.dropped += 1
            q.put_nowait(frame)

    def close(self) -> None:
        self._closed = True
        for q in self._subscribers:
            if q.full():
                q.get_nowait()
            q.put_nowait(None)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler: `text/event-stream` until the client leaves or the hub closes; 503
        while `max_subscribers` streams are open."""
        if len(self._subscribers) >= self.max_subscribers and not self._closed:
            self.refused += 1
            return web.Response(
                status=503,
                text=f"503: {self.max_subscribers} status pages are open, the most [http] max_event_clients allows; "
                "close one or raise the limit\n",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        # the slot is taken before the first await, so two pages arriving together cannot both pass the check
        q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=self._queue_size)
        self._subscribers.add(q)
        try:
            return await self._serve(request, q)
        finally:
            self._subscribers.discard(q)

    async def _serve(self, request: web.Request, q: asyncio.Queue[bytes | None]) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # a reverse proxy must not buffer the stream
            }
        )
        await resp.prepare(request)
        if self._closed:
            return resp
        try:
            await resp.write(b"retry: 3000\n\n")
            if self.last is not None:
                await resp.write(self.last)
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_S):
                        frame = await q.get()
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                if frame is None:
                    break
                await resp.write(frame)
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        return resp
