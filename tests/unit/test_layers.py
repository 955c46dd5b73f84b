"""The layer rules of the tree, read from the source with `ast` (nothing is imported or run).

- `analytics` imports nothing of `gateway`: it is the pure numbers the gateway builds on.
- `gateway/codec` is sans-IO: no sockets, files, clock, event loop, database, logging or
  protocol library; no `open()`/`print()`/`input()`, no `async def` or `await`, no `datetime.now()`.
- One owner per library: `sqlite3` only in `gateway/ledger/database.py`, `pymodbus` only in
  `gateway/sources/pymodbus_client.py`, `aiomqtt` only in the two MQTT modules,
  `asyncua` only in `gateway/sources/opcua_client.py`, `snap7` only in
  `gateway/sources/snap7_client.py`.
- `gateway/core` (the kernel) imports nothing of the gateway at run time; an import under
  `if TYPE_CHECKING:` may name a type it describes.
- No import circle in `gateway/` or `analytics/`. Imports inside functions and under
  `if TYPE_CHECKING:` count too: modules that name each other cannot be read or changed apart,
  however late the import runs.

Every import counts wherever it is written (module level, in a function, type-only, or
`importlib.import_module("name")` with a literal name). Each rule is a function from the scanned
modules to the places that break it; the tests at the end show that each rule catches a breach.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "analytics")


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name: "gateway.core.model", "sqlite3", "pymodbus.client"
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`


@dataclass(frozen=True)
class Module:
    name: str
    path: str  # relative to the root, for messages
    imports: tuple[Import, ...]
    io_uses: tuple[tuple[str, int], ...]  # what sans-IO code may not do: ("open()", line), ("await", line)

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"


_IO_BUILTINS = frozenset({"open", "print", "input"})
_CLOCK_READS = frozenset({"now", "utcnow", "today"})


class _Scanner(ast.NodeVisitor):
    def __init__(self, module: str, package: str, known: frozenset[str]) -> None:
        self.module, self.package, self.known = module, package, known
        self.imports: list[Import] = []
        self.io_uses: list[tuple[str, int]] = []
        self._type_only = False

    def _add(self, name: str, line: int) -> None:
        self.imports.append(Import(name, line, self._type_only))

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            outer, self._type_only = self._type_only, True
            for child in node.body:
                self.visit(child)
            self._type_only = outer
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: resolve against this module's package
            parts = self.package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.known else base, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in _IO_BUILTINS:
            self.io_uses.append((f"{func.id}()", node.lineno))
        if isinstance(func, ast.Attribute) and func.attr in _CLOCK_READS:
            self.io_uses.append((f".{func.attr}() (a clock read)", node.lineno))
        dynamic = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")) or (
            isinstance(func, ast.Attribute) and func.attr == "import_module"
        )
        if dynamic and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            self._add(node.args[0].value, node.lineno)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.io_uses.append(("async def", node.lineno))
        self.generic_visit(node)

    def visit_Await(self, node: ast.Await) -> None:
        self.io_uses.append(("await", node.lineno))
        self.generic_visit(node)


def scan(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Module]:
    """Every module of `packages` under `root`, with what it imports and does."""
    paths: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            paths[name] = path
    known = frozenset(paths)
    modules = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        scanner = _Scanner(name, package, known)
        scanner.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        modules[name] = Module(name, path.relative_to(root).as_posix(), tuple(scanner.imports), tuple(scanner.io_uses))
    return modules


def _in(name: str, *prefixes: str) -> bool:
    """`name` is one of `prefixes` or inside one of them (a package)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _top(name: str) -> str:
    return name.partition(".")[0]


# -- the rules: each returns "where: what" for every breach --------------------------------------


def analytics_is_pure(modules: dict[str, Module]) -> list[str]:
    return [
        f"{m.where(i.line)}: analytics imports {i.module}; analytics imports nothing of gateway"
        for m in modules.values()
        if _in(m.name, "analytics")
        for i in m.imports
        if _top(i.module) == "gateway"
    ]


# What reaching the outside world takes: sockets, files and processes, the clock, an event loop,
# a database, log output, and the libraries of the protocols the gateway speaks.
IO_MODULES = frozenset(
    {
        "asyncio", "socket", "ssl", "selectors", "select", "os", "pathlib", "io", "shutil", "tempfile",
        "subprocess", "signal", "mmap", "time", "sqlite3", "logging", "urllib", "http",
        "aiomqtt", "paho", "pymodbus", "snap7", "serial", "aiohttp", "influxdb_client", "requests",
        "asyncua",
    }
)  # fmt: skip


def codec_is_sans_io(modules: dict[str, Module]) -> list[str]:
    out = []
    for m in modules.values():
        if not _in(m.name, "gateway.codec"):
            continue
        out += [f"{m.where(i.line)}: codec imports {i.module}" for i in m.imports if _top(i.module) in IO_MODULES]
        out += [f"{m.where(line)}: codec uses {what}" for what, line in m.io_uses]
    return out


# library -> the modules (or packages) that may import it
OWNERS = {
    "sqlite3": ("gateway.ledger.database",),  # every ledger connection is opened there
    "pymodbus": ("gateway.sources.pymodbus_client",),
    "snap7": ("gateway.sources.snap7_client",),
    "aiomqtt": ("gateway.sources.mqtt", "gateway.sinks.alerts_mqtt"),
    "asyncua": ("gateway.sources.opcua_client",),
}


def one_owner_per_library(modules: dict[str, Module]) -> list[str]:
    return [
        f"{m.where(i.line)}: {m.name} imports {i.module}; only {' and '.join(OWNERS[_top(i.module)])} may"
        for m in modules.values()
        for i in m.imports
        if _top(i.module) in OWNERS and not _in(m.name, *OWNERS[_top(i.module)])
    ]


def core_stands_alone(modules: dict[str, Module]) -> list[str]:
    return [
        f"{m.where(i.line)}: the kernel imports {i.module} at run time (only under `if TYPE_CHECKING:` may it)"
        for m in modules.values()
        if _in(m.name, "gateway.core")
        for i in m.imports
        if not i.type_only and _in(i.module, "gateway") and not _in(i.module, "gateway.core")
    ]


def _graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for m in modules.values():
        for i in m.imports:
            target = i.module
            while target and target not in modules:  # gateway.codec.Thing -> gateway.codec
                target = target.rpartition(".")[0]
            if target and target != m.name:
                graph[m.name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def connect(v: str) -> Iterator[list[str]]:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                yield from connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                yield sorted(component)

    for v in sorted(graph):
        if v not in index:
            yield from connect(v)


def _path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One circle through the component's first module, for the message."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    return component  # unreachable for a strongly connected component


def no_import_circles(modules: dict[str, Module]) -> list[str]:
    graph = _graph(modules)
    return [f"import circle: {' -> '.join(_path(graph, c))} (all of {', '.join(c)})" for c in _cycles(graph)]


RULES: dict[str, Callable[[dict[str, Module]], list[str]]] = {
    "analytics imports nothing of gateway": analytics_is_pure,
    "gateway/codec does no I/O": codec_is_sans_io,
    "one owner per library": one_owner_per_library,
    "gateway/core imports nothing of the gateway at run time": core_stands_alone,
    "no import circles": no_import_circles,
}


@pytest.fixture(scope="module")
def tree() -> dict[str, Module]:
    return scan(ROOT)


@pytest.mark.parametrize("rule", RULES, ids=list(RULES))
def test_the_tree_keeps_the_rule(tree: dict[str, Module], rule: str) -> None:
    breaches = RULES[rule](tree)
    assert not breaches, f"{rule}:\n  " + "\n  ".join(breaches)


def test_the_scan_sees_the_whole_tree(tree: dict[str, Module]) -> None:
    # a rule over an empty or partial scan would pass for the wrong reason
    for name in ("analytics.emissions", "gateway.core.model", "gateway.codec", "gateway.pipeline"):
        assert name in tree
    assert any(i.module == "sqlite3" for m in tree.values() for i in m.imports)


# -- each rule catches a breach: a small tree written for the purpose ------------------------------

BREACHES = {
    "analytics imports nothing of gateway": {"analytics/calc.py": "def f():\n    from gateway.core import model\n"},
    "gateway/codec does no I/O": {
        "gateway/codec/a.py": "from pathlib import Path\n",
        "gateway/codec/b.py": "def read(p):\n    return open(p).read()\n",
        "gateway/codec/c.py": "async def decode(x):\n    return x\n",
        "gateway/codec/d.py": "import datetime\ndef stamp():\n    return datetime.datetime.now()\n",
    },
    "one owner per library": {
        "gateway/http/history.py": "import sqlite3\n",
        "gateway/ledger/store.py": "import sqlite3\n",
        "gateway/sources/modbus.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pymodbus.client import AsyncModbusTcpClient\n",
        "gateway/pipeline.py": "import importlib\nmqtt = importlib.import_module('aiomqtt')\n",
    },
    "gateway/core imports nothing of the gateway at run time": {
        "gateway/core/signals.py": "from gateway.settings.site import GatewaySettings\n",
    },
    "no import circles": {
        "gateway/settings/site.py": "def load():\n    from . import load\n",
        "gateway/settings/load.py": "from gateway.settings.site import GatewaySettings\n",
    },
}
ALLOWED = {  # what every rule lets pass
    "analytics/__init__.py": "",
    "analytics/units.py": "import numpy as np\n",
    "gateway/__init__.py": "",
    "gateway/core/__init__.py": "",
    "gateway/core/model.py": "from analytics.units import np\n",
    "gateway/core/signals.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway.settings.site import GatewaySettings\n",
    "gateway/codec/__init__.py": "import math\nimport struct\nfrom datetime import datetime\nfrom gateway.core.model import np\n",
    "gateway/ledger/__init__.py": "",
    "gateway/ledger/database.py": "import sqlite3\n",
    "gateway/sources/__init__.py": "",
    "gateway/sources/mqtt.py": "import aiomqtt\n",
    "gateway/sources/pymodbus_client.py": "from pymodbus.client import AsyncModbusTcpClient\n",
    "gateway/settings/__init__.py": "",
    "gateway/settings/site.py": "from gateway.core import model\n",
    "gateway/settings/load.py": "from gateway.settings import site\n",
}


def _write(root: Path, files: dict[str, str]) -> dict[str, Module]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return scan(root)


def test_a_tree_that_keeps_every_rule_passes(tmp_path: Path) -> None:
    modules = _write(tmp_path, ALLOWED)
    assert {rule: check(modules) for rule, check in RULES.items()} == {rule: [] for rule in RULES}


@pytest.mark.parametrize("rule", RULES, ids=list(RULES))
def test_each_rule_catches_a_breach(tmp_path: Path, rule: str) -> None:
    files = {**ALLOWED, **BREACHES[rule]}
    breaches = RULES[rule](_write(tmp_path, files))
    # one breach per file written for the purpose (the circle: one for its two modules)
    expected = 1 if rule == "no import circles" else len(BREACHES[rule])
    assert len(breaches) == expected, breaches
    for rel in BREACHES[rule]:
        name = rel.removesuffix(".py").replace("/", ".")  # a circle is told by module names
        assert any(rel in b or name in b for b in breaches), (rel, breaches)
