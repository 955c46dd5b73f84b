"""`emgate check-config FILE`: validate a site file, factors and streams without running.

Beyond the file itself it checks what the file asks of this machine
(gateway.settings.host_checks): the files it names, the ledger's path and the status page's
address are errors, and a secret file others can read is a warning (printed, exit still 0).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.commands.common import load_or_report, report_config_error
from gateway.core.errors import ConfigError
from gateway.settings.factors import factor_table_of
from gateway.settings.host_checks import host_problems
from gateway.settings.load import key_locator
from gateway.stages.emissions import EmissionCalculator


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate a site configuration file")
    p.add_argument("config", type=Path, help="site TOML file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_or_report(args.config)
    if settings is None:
        return 2
    try:
        factors = factor_table_of(settings.factors)
        EmissionCalculator(settings, factors)
    except ConfigError as exc:  # factor and stream problems name no file of their own
        problems = None if exc.problems == [str(exc)] else exc.problems
        report_config_error(ConfigError(f"{args.config}: {exc}", problems))
        return 2
    if settings.cbam is not None:  # the [cbam] section against the rest of the file, as `emgate cbam` checks it
        from gateway.export.cbam import cbam_problems  # the export's modules load only for a site with [cbam]

        where = key_locator(args.config)
        cbam = [f"{where(loc)}: {message}" for loc, message in cbam_problems(settings)]
        if cbam:
            report_config_error(ConfigError(f"{args.config}: {len(cbam)} problem(s) in [cbam]", cbam))
            return 2
    found = host_problems(settings)
    if found:
        where = key_locator(args.config)
        errors = [f"{where(p.loc)}: {p.message}" for p in found if p.severity == "error"]
        for p in found:
            if p.severity == "warning":
                print(f"emgate: warning: {where(p.loc)}: {p.message}", file=sys.stderr)
        if errors:
            report_config_error(ConfigError(f"{args.config}: {len(errors)} problem(s) on this machine", errors))
            return 2
    n_points = sum(len(d.points) for d in settings.modbus.devices)
    print(
        f"{args.config}: ok — site {settings.site.name} ({settings.site.timezone}), "
        f"{len(settings.modbus.devices)} Modbus device(s) with {n_points} point(s), "
        f"{len(settings.mqtt.brokers)} MQTT broker(s), "
        + (f"{len(settings.s7.devices)} S7 PLC(s), " if settings.s7.devices else "")
        + (f"{len(settings.opcua.servers)} OPC UA server(s), " if settings.opcua.servers else "")
        + f"{len(settings.signals)} signal(s), {len(settings.streams)} stream(s)"
    )
    return 0
