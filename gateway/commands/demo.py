"""`emgate demo`: the simulated plant and the gateway in one process, no servers needed.

The plant (gateway/sim/plant.py) is served over Modbus TCP on a free loopback port and the
gateway polls it like any site, with config/examples/demo-plant.toml. `--speed N` runs the
plant and the gateway's clock N times faster (an injected clock, not shorter sleeps).
"""

from __future__ import annotations

import argparse
import logging
import socket
import tempfile
import tomllib
from pathlib import Path

from gateway.commands.common import build_or_report, report_config_error, run_stoppable
from gateway.core.clock import ScaledClock
from gateway.core.errors import ConfigError
from gateway.http import add_http_argument, http_bind
from gateway.pipeline import Gateway
from gateway.settings.load import settings_from_data
from gateway.settings.shipped import example_site
from gateway.settings.site import GatewaySettings
from gateway.sim.plant import UNITS, SimulatedPlant
from gateway.sources.pymodbus_client import RegisterServer

log = logging.getLogger("gateway.demo")

DEMO_CONFIG = example_site("demo-plant")  # config/examples/demo-plant.toml, shipped as package data


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the gateway against a simulated steel works")
    p.add_argument("--speed", type=float, default=1.0, help="run the plant and the clock N times faster (default 1)")
    p.add_argument("--minutes", type=int, default=None, help="stop after M closed minutes (default: run until Ctrl-C)")
    p.add_argument("--ledger", type=Path, default=None, help="ledger file (default: a new temporary file)")
    p.add_argument("--config", type=Path, default=DEMO_CONFIG, help="demo plant configuration")
    add_http_argument(p)
    p.set_defaults(func=run)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_settings(config: Path, port: int, ledger: Path, speed: float = 1.0) -> GatewaySettings:
    """The demo plant's settings with its devices pointed at the simulator's port.

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
    return settings_from_data(data, config, text)  # checked as `emgate run` checks a site file


async def run_demo(gw: Gateway, port: int, minutes: int | None, http: str | None = None) -> None:
    """Serve the simulated plant on `port`, on the gateway's clock, and run the gateway on it."""
    plant = SimulatedPlant(gw.clock)
    gw.print_minutes()
    fills = {uid: plant.fill(uid) for uid in UNITS.values()}
    async with RegisterServer(port=port, fills=fills, n_registers=16), gw.status_page(http) as page:
        if page is not None:
            print(f"emgate demo: status page {page.url} (metrics {page.url}metrics)", flush=True)
        await gw.run(stop_after_minutes=minutes)


def run(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        print("emgate demo: --speed must be positive", flush=True)
        return 2
    # without --ledger each demo has a ledger of its own: two demos never share one by default
    ledger = args.ledger or Path(tempfile.mkdtemp(prefix="emgate-demo-")) / "ledger.sqlite"
    port = free_port()
    try:
        settings = demo_settings(args.config, port, ledger, args.speed)
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        report_config_error(ConfigError(f"{args.config}: {exc}"))
        return 2
    gw = build_or_report("demo", args.config, lambda: Gateway.build(settings, clock=ScaledClock(args.speed)))
    if isinstance(gw, int):
        return gw
    print(f"emgate demo: simulated plant on 127.0.0.1:{port}, speed x{args.speed:g}, ledger {ledger}", flush=True)
    try:
        # Ctrl-C and SIGTERM stop it in order (KeyboardInterrupt, exit 130, after the final checkpoint)
        run_stoppable(run_demo(gw, port, args.minutes, http_bind(args, settings)))
    except ConfigError as exc:
        report_config_error(exc)
        return 2
    finally:
        gw.close()
    print(f"emgate demo: {gw.minutes_closed} minute(s) closed, {gw.ledger.head_seq} ledger row(s), head {gw.ledger.head_hash[:16]}…")
    return 0
