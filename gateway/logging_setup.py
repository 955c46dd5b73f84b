"""Logging for the `emgate` command: human lines on a terminal, JSON lines for collectors.

The gateway logs state changes only (a device lost / recovered, InfluxDB unreachable /
recovered, the status page address); high-rate problems are counted and exposed on /metrics,
never logged per sample. So both formats stay readable at any plant size.

JSON lines carry `ts` (RFC 3339 UTC), `level`, `logger`, `msg`, `exc` when there is a
traceback, and any `extra={...}` fields given at the call site.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# LogRecord attributes that are not call-site extras
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = (
                    value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
                )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(
    level: str = "INFO", fmt: LogFormat = "text", stream: TextIO | None = None
) -> logging.Handler:
    """Configure the root logger once for the process; returns the handler installed."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp logs each request at INFO on its access logger; the page's event stream and
    # Prometheus scrapes would flood the log with repetitions.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
