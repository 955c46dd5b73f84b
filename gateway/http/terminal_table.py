"""LiveTable: a compact live view of processes and devices for `emgate run` on a terminal.

Only used when stdout is a TTY (a service's journal gets log lines, not redraws). It reads the
same snapshot as the status page, once a second, from the gateway's TaskGroup (the pipeline
builds it: gateway.pipeline.Gateway.show_live_table).
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.http.history import MinuteHistory
from gateway.http.status import build_snapshot
from gateway.http.view import GatewayView


def _kg(kg: float | None) -> str:
    if kg is None:
        return "–"
    return f"{kg / 1000:,.1f} t" if abs(kg) >= 10_000 else f"{kg:,.1f} kg"


def _age(s: float | None) -> str:
    if s is None:
        return "never"
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago"


def render_snapshot(snap: dict[str, Any]) -> Group:
    """The two tables (processes, devices) and a status line, from a status snapshot."""
    totals = snap["totals"]
    latest = (snap["latest"] or {}).get("co2_kg", {})
    procs = Table(title=Text(f"{snap['site']}: CO2 per process"), title_justify="left", expand=False)
    for col in ("process", "latest minute", "last hour", "today", "this year"):
        procs.add_column(col, justify="left" if col == "process" else "right")
    for p in snap["processes"]:
        procs.add_row(
            Text(p),
            _kg(latest.get(p)),
            _kg(totals["last_hour_kg"].get(p, 0.0)),
            _kg(totals["today_kg"].get(p, 0.0)),
            _kg(totals["year_kg"].get(p, 0.0)),
        )
    procs.add_row(
        Text("total", style="bold"),
        _kg(sum(latest.values())) if latest else "–",
        _kg(sum(totals["last_hour_kg"].values())),
        _kg(sum(totals["today_kg"].values())),
        _kg(sum(totals["year_kg"].values())),
        style="bold",
    )
    devs = Table(title="devices", title_justify="left")
    # one line per device whatever the message: the table must fit a terminal, so the fixed
    # columns keep their width and only the last error is cut
    for col, width in (("device", 14), ("state", 5), ("last good", 10), ("errors", 6), ("latency", 9)):
        devs.add_column(
            col, justify="left" if col in ("device", "state") else "right", no_wrap=True, min_width=width
        )
    devs.add_column("last error", no_wrap=True, overflow="ellipsis", max_width=48)
    for d in snap["devices"]:
        # Text(), not str: a name like "modbus[bf-1]" would otherwise be read as rich markup
        devs.add_row(
            Text(d["name"]),
            Text("OK", style="green") if d["ok"] else Text("LOST", style="bold red"),
            _age(d["age_s"]),
            str(d["errors"]),
            "–" if d["latency_ms"] is None else f"{d['latency_ms']:.1f} ms",
            Text((d["last_error"] or "")[:60]),
        )
    influx = snap["influx"]
    backlog = "disabled" if influx is None else f"{influx['backlog_rows']:,} rows"
    line = (
        f"minutes closed {snap['window']['minutes_closed']}  ledger {snap['ledger_rows']:,} rows  "
        f"InfluxDB backlog {backlog}  "
        f"alerts {'–' if snap['alerts'] is None else len(snap['alerts'])}"
    )
    return Group(procs, devs, Text(line, style="dim"))


class LiveTable:
    """Redraws the tables every `interval_s` real seconds until cancelled.

    Args:
        gw: the gateway (gateway.pipeline.Gateway) as its views see it.
        history: the MinuteHistory the gateway feeds with each closed minute.
        console: where to draw; by default the terminal.
        interval_s: real seconds between redraws.
    """

    def __init__(
        self,
        gw: GatewayView,
        history: MinuteHistory,
        *,
        console: Console | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self._gw = gw
        self._console = console or Console()
        self._interval_s = interval_s
        self.history = history

    def render(self) -> Group:
        return render_snapshot(build_snapshot(self._gw, self.history))

    async def run(self) -> None:
        with Live(self.render(), console=self._console, refresh_per_second=4, transient=False) as live:
            while True:
                await asyncio.sleep(self._interval_s)
                live.update(self.render())
