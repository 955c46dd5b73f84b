"""`emgate demo`: the simulated plant and the gateway in one process, no servers needed.

The plant is served over Modbus TCP on a free loopback port and the gateway polls it like any
site. By default it is the integrated works of config/examples/integrated-works.toml
(gateway/sim/works.py: coking, sintering, blast furnace, BOF, captive power plant, rolling, with
a budget and live alerts); `--config config/examples/demo-plant.toml` runs the small five-device
plant of gateway/sim/plant.py instead. `--speed N` runs the plant and the gateway's clock N
times faster (an injected clock, not shorter sleeps).
"""

from __future__ import annotations

import argparse
import logging
import math
import socket
import sys
import tempfile
import tomllib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.commands.common import build_or_report, report_config_error, run_stoppable
from gateway.core.clock import ScaledClock
from gateway.core.errors import ConfigError
from gateway.http import add_http_argument, http_bind
from gateway.pipeline import Gateway
from gateway.settings.load import settings_from_data
from gateway.settings.shipped import example_site
from gateway.settings.site import GatewaySettings
from gateway.sim.plant import UNITS, SimulatedPlant
from gateway.sim.works import DIRECT_CO2_T_PER_H, ProfilePlant, serves
from gateway.sources.pymodbus_client import RegisterServer

log = logging.getLogger("gateway.demo")

DEMO_CONFIG = example_site("integrated-works")  # config/examples/integrated-works.toml, shipped as package data
DEMO_PLANT_CONFIG = example_site("demo-plant")  # the small plant of gateway/sim/plant.py


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the gateway against a simulated steel works")
    p.add_argument("--speed", type=float, default=1.0, help="run the plant and the clock N times faster (default 1)")
    p.add_argument("--minutes", type=int, default=None, help="stop after M closed minutes (default: run until Ctrl-C)")
    p.add_argument("--ledger", type=Path, default=None, help="ledger file (default: a new temporary file)")
    p.add_argument(
        "--config",
        type=Path,
        default=DEMO_CONFIG,
        help="the simulated site's file: integrated-works (default) or demo-plant, or a copy of either",
    )
    add_http_argument(p)
    p.set_defaults(func=run)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_settings(
    config: Path, port: int, ledger: Path, speed: float = 1.0, opening_at_s: float | None = None
) -> GatewaySettings:
    """The demo plant's settings with its devices pointed at the simulator's port.

    `opening_at_s`: the demo's start on a new ledger; the simulated works's budget then opens
    with the year's emissions before it (with_opening).

    A sped-up clock shrinks the window's delay in real time (2 s at x60 is 33 ms, less than a
    loaded machine needs to finish a poll), so the delay is kept at half a real second at least.
    """
    text = config.read_text(encoding="utf-8")
    data = tomllib.loads(text)
    window = data.setdefault("window", {})
    window["delay_s"] = max(float(window.get("delay_s", 2.0)), 0.5 * speed)
    for dev in data.get("modbus", {}).get("devices", []):
        dev["host"], dev["port"] = "127.0.0.1", port
    data.setdefault("ledger", {})["path"] = str(ledger)
    data.setdefault("influx", {})["enabled"] = False
    settings = settings_from_data(data, config, text)  # checked as `emgate run` checks a site file
    if opening_at_s is not None and settings.budget is not None and serves(settings):
        settings = with_opening(settings, opening_at_s)
    return settings


def with_opening(settings: GatewaySettings, now_s: float) -> GatewaySettings:
    """The simulated works's settings with the year to date before `now_s` as the budget's opening_t.

    A demo's ledger starts empty, so without it the budget would count the year from the demo's
    first minute and project far below the allowance. The works's pace (DIRECT_CO2_T_PER_H,
    measured on a recorded month) times the hours since 1 January (site time) stands in for the
    months it did not record. A year that gives its own opening_t keeps it.
    """
    assert settings.budget is not None
    tz = ZoneInfo(settings.site.timezone)
    now = datetime.fromtimestamp(now_s, tz)
    hours = (now - now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 3600.0
    years = [
        y.model_copy(update={"opening_t": round(DIRECT_CO2_T_PER_H * hours, 1)}) if y.year == now.year and not y.opening_t else y
        for y in settings.budget.years
    ]
    return settings.model_copy(update={"budget": settings.budget.model_copy(update={"years": years})})


def plant_fills(gw: Gateway) -> dict[int, Callable[[int, int, int, list[int]], None]]:
    """The simulated plant for the gateway's site, as RegisterServer fills by unit id.

    A site whose every Modbus point is a signal of the integrated works is served from the
    works's profiles, by the site file's own registers; any other (demo-plant.toml) by the
    five-device plant of gateway/sim/plant.py.
    """
    if serves(gw.settings):
        works = ProfilePlant(gw.settings, gw.clock)
        return {uid: works.fill(uid) for uid in works.unit_ids()}
    plant = SimulatedPlant(gw.clock)
    return {uid: plant.fill(uid) for uid in UNITS.values()}


async def run_demo(gw: Gateway, port: int, minutes: int | None, http: str | None = None) -> None:
    """Serve the simulated plant on `port`, on the gateway's clock, and run the gateway on it."""
    fills = plant_fills(gw)
    gw.print_minutes()
    async with RegisterServer(port=port, fills=fills, n_registers=16), gw.status_page(http) as page:
        if page is not None:
            print(f"emgate demo: status page {page.url} (metrics {page.url}metrics)", flush=True)
        await gw.run(stop_after_minutes=minutes)


def run(args: argparse.Namespace) -> int:
    if not (math.isfinite(args.speed) and args.speed > 0):
        print(f"emgate demo: --speed {args.speed!r}: give a positive number (60 runs sixty times faster)", file=sys.stderr, flush=True)
        return 2
    # without --ledger each demo has a ledger of its own: two demos never share one by default
    ledger = args.ledger or Path(tempfile.mkdtemp(prefix="emgate-demo-")) / "ledger.sqlite"
    port = free_port()
    clock = ScaledClock(args.speed)
    # a ledger of its own has no year to date: the works's budget opens with one (with_opening)
    opening_at_s = None if ledger.exists() else clock.now()
    try:
        settings = demo_settings(args.config, port, ledger, args.speed, opening_at_s)
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        report_config_error(ConfigError(f"{args.config}: {exc}"))
        return 2
    gw = build_or_report("demo", args.config, lambda: Gateway.build(settings, clock=clock))
    if isinstance(gw, int):
        return gw
    print(f"emgate demo: simulated plant on 127.0.0.1:{port}, speed x{args.speed:g}, ledger {ledger}", flush=True)
    if opening_at_s is not None and settings.budget is not None:
        year = datetime.fromtimestamp(opening_at_s, ZoneInfo(settings.site.timezone)).year
        opening = next((y.opening_t for y in settings.budget.years if y.year == year and y.opening_t), None)
        if opening is not None:
            print(f"emgate demo: budget {year} opens with {opening:,.1f} t to date (the simulated works's pace)", flush=True)
    try:
        # Ctrl-C and SIGTERM stop it in order (KeyboardInterrupt, exit 130, after the final checkpoint)
        run_stoppable(run_demo(gw, port, args.minutes, http_bind(args, settings)))
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    finally:
        gw.close()
    print(
        f"emgate demo: {gw.minutes_closed} minute(s) closed, {gw.ledger.head_seq} ledger row(s), head {gw.ledger.head_hash[:16]}…"
    )
    return 0
