"""`emgate examples`: the shipped example site files, where emgate is installed.

    emgate examples                  each example's name and path; each file says in its comments what it is
    emgate examples uci-steel        the path of one, alone on a line, to pass to --config:

    emgate replay --config "$(emgate examples uci-steel)" --input steel_industry_energy_2018-01_to_10.csv --out out/uci
    cp "$(emgate examples demo-plant)" site.toml      # a start for a site file of your own

In a checkout these are config/examples/*.toml; from a wheel they are its package data
(gateway/settings/shipped.py).
"""

from __future__ import annotations

import argparse
import sys

from gateway.core.errors import ConfigError
from gateway.settings.shipped import example_site, example_sites


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("examples", help="list the shipped example site files, or print the path of one")
    p.add_argument("name", nargs="?", default=None, help="an example's name, e.g. uci-steel: print its path only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
