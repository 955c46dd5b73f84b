"""`emgate examples`: the shipped example site files, where emgate is installed.

    emgate examples                  each example's name and path; each file says in its comments what it is
    emgate examples uci-steel        the path of one, alone on a line, to pass to --config:

    emgate replay --config "$(emgate examples uci-steel)" --input steel_industry_energy_2018-01_to_10.csv --out out/uci
    cp "$(emgate examples demo-plant)" site.toml      # a start for a site file of your own

    emgate examples integrated-works --month 2026-11 --out works
                                     a recorded month of the simulated integrated works, its lab
                                     CSV and reports (gateway/sim/record.py), to try the deposit on

In a checkout these are config/examples/*.toml; from a wheel they are its package data
(gateway/settings/shipped.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.core.errors import ConfigError
from gateway.settings.shipped import example_site, example_sites


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("examples", help="list the shipped example site files, or print the path of one")
    p.add_argument("name", nargs="?", default=None, help="an example's name, e.g. uci-steel: print its path only")
    p.add_argument("--month", default=None, help="with integrated-works: write that month's recorded data (YYYY-MM)")
    p.add_argument("--out", type=Path, default=None, help="with --month: the folder to write into")
    p.add_argument("--days", type=int, default=None, help="with --month: only the month's first N days")
    p.set_defaults(func=run)


RECORDED = "integrated-works"  # the example whose simulated works can be recorded


def record(args: argparse.Namespace) -> int:
    """`--month M --out DIR`: the recorded month, lab CSV and reports of the simulated works."""
    from gateway.settings.load import load_settings
    from gateway.sim.record import record as write

    if args.name is None or args.name.removesuffix(".toml") != RECORDED or args.out is None:
        print(f"emgate examples: --month goes with the example {RECORDED} and --out DIR", file=sys.stderr)
        return 2
    try:
        settings = load_settings(example_site(RECORDED))
        csv_path, lab_path = write(settings, args.month, args.out, args.days)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"emgate examples: {exc}", file=sys.stderr)
        return 2
    print(f"{csv_path}\n{lab_path}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.month is not None:
        return record(args)
    if args.out is not None or args.days is not None:
        print("emgate examples: --out and --days go with --month", file=sys.stderr)
        return 2
    try:
        if args.name is not None:
            print(example_site(args.name))
            return 0
        examples = example_sites()
    except ConfigError as exc:
        print(f"emgate examples: {exc}", file=sys.stderr)
        return 2
    width = max(map(len, examples), default=0)
    for name, path in examples.items():
        print(f"{name:<{width}}  {path}")
    return 0
