"""`emgate browse`: list an OPC UA server's nodes with their types and values, to find the node
ids a site file needs.

    emgate browse opcua://10.1.2.3:4840                      # the Objects folder, 2 levels deep
    emgate browse opcua://10.1.2.3:4840 --node "ns=2;s=BF1" --depth 3
    emgate browse opcua://10.1.2.3:4840 --node "/0:Objects/2:BF1/2:Flow" --depth 0   # read one node

Read-only: Browse and Read are the only services sent after the session is open. Exit codes:
0 listed, 1 the server could not be reached or does not know the node, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.settings.opcua import node_spec_problem


def add_parser(subparsers: Any) -> None:
    """Register the `browse` subcommand."""
    p = subparsers.add_parser(
        "browse",
        help="list an OPC UA server's nodes with their types (and read one node)",
        description="Browse an OPC UA server from the Objects folder or from --node, --depth levels deep; "
        "prints each node's id, browse name, class, and for variables the data type and current value. "
        "Security None; --username with --password-file for servers that require a user.",
    )
    p.add_argument("url", help="opcua://HOST:PORT[/PATH] or opc.tcp://HOST:PORT[/PATH]")
    p.add_argument("--node", help="start here: a NodeId (ns=2;s=Name) or a browse path (/0:Objects/2:Name)")
    p.add_argument("--depth", type=int, default=2, help="levels below the start node (default 2; 0 reads the node alone)")
    p.add_argument("--username")
    p.add_argument("--password-file", type=Path, help="file holding the password (never on the command line)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    p.set_defaults(func=run)


class _Usage(Exception):
    pass


def endpoint_url(url: str) -> str:
    """opcua://HOST:PORT/PATH -> opc.tcp://HOST:PORT/PATH; raises _Usage for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("opcua", "opc.tcp") or not parts.hostname:
        raise _Usage(f"{url!r} is not opcua://HOST:PORT[/PATH]")
    try:
        port = parts.port or 4840
    except ValueError:
        raise _Usage(f"{url!r}: the port is not a number from 1 to 65535") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"opc.tcp://{host}:{port}{parts.path}"


def _check(args: argparse.Namespace) -> tuple[str, str | None]:
    url = endpoint_url(args.url)
    if args.node is not None:
        problem = node_spec_problem(args.node)
        if problem:
            raise _Usage(f"--node {args.node!r} {problem}")
    if not 0 <= args.depth <= 20:
        raise _Usage(f"--depth {args.depth} is outside 0..20")
    if args.timeout <= 0:
        raise _Usage("--timeout must be above 0")
    if args.password_file is not None and not args.username:
        raise _Usage("--password-file needs --username")
    password = None
    if args.password_file is not None:
        try:
            password = args.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _Usage(f"--password-file {args.password_file}: {exc.strerror}; check the path and its permissions") from None
    args.password = password
    return url, args.node


async def _browse(args: argparse.Namespace, url: str, node: str | None) -> list[Any]:
    from gateway.sources.opcua_client import OpcUaSession  # imports asyncua

    session = OpcUaSession(
        url, timeout_s=args.timeout, watchdog_s=max(args.timeout, 1.0), username=args.username, password=args.password
    )
    await session.open()
    try:
        return await session.browse(node, args.depth)
    finally:
        await session.close()


def run(args: argparse.Namespace) -> int:
    """Browse once; print one line per node."""
    try:
        url, node = _check(args)
    except _Usage as exc:
        print(f"emgate browse: error: {exc}", file=sys.stderr)
        return 2
    from gateway.sources.opcua_client import OpcUaLinkError

    try:
        rows = asyncio.run(_browse(args, url, node))
    except OpcUaLinkError as exc:
        print(
            f"emgate browse: {url}: {exc}; check the address and port, that the server offers security None "
            "(or needs --username), and the node id",
            file=sys.stderr,
        )
        return 1
    print(f"{url}: {len(rows)} node(s)")
    for r in rows:
        line = f"{'  ' * r.depth}{r.browse_name}  [{r.node_class}]  {r.node_id}"
        if r.node_class == "Variable":
            line += f"  {r.data_type} = {r.value}"
        print(line)
    return 0
