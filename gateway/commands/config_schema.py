"""`emgate config-schema`: print the JSON Schema of the site configuration.

Editors (VS Code's Even Better TOML, taplo) validate a site file against it as it is typed;
docs/config-reference.md is generated from the same models (scripts/gen_config_reference.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.settings.site import GatewaySettings


def config_schema() -> dict[str, Any]:
    schema = GatewaySettings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config-schema", help="print the JSON Schema of the site configuration")
    p.add_argument("--output", type=Path, default=None, help="write to this file instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    text = json.dumps(config_schema(), indent=2, sort_keys=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(
            f"emgate config-schema: cannot write {args.output}: {exc.strerror}; check the directory",
            file=sys.stderr,
        )
        return 1
    return 0
