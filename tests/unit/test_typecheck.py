"""The type check, run with the tests so that `make test` (and so CI) fails on a type error as
`make lint` does.

mypy checks the files and with the strictness that pyproject.toml's [tool.mypy] gives; its
cache (.mypy_cache) makes a second run take seconds. Each `# type: ignore` in those files names
its error code (mypy enforces that) and says after it why the error is not fixed, except in the
modules whose errors the configuration ignores for now (`ignore_errors`), as mypy does.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MYPY = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
CHECKED: list[str] = MYPY["files"]
UNCHECKED = [p for o in MYPY.get("overrides", ()) if o.get("ignore_errors") for p in o["module"]]
IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<rest>.*)$")
# `# type: ignore[code]  # why`, or `[code-a, code-b]`
WITH_REASON = re.compile(r"^\[[a-z-]+(?:,\s*[a-z-]+)*\]\s+#\s*\S")


def _mypy_or_skip() -> None:
    if importlib.util.find_spec("mypy") is None:
        if os.environ.get("CI"):
            pytest.fail("mypy is not installed; the test extra installs it: pip install -c constraints.txt -e '.[test]'")
        pytest.skip("mypy is not installed (pip install -c constraints.txt -e '.[test]')")


def test_mypy_finds_no_error() -> None:
    _mypy_or_skip()
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, f"mypy (configured in pyproject.toml [tool.mypy]):\n{proc.stdout}{proc.stderr}"


def _unchecked(path: Path) -> bool:
    """Whether one of the `ignore_errors` patterns ("a.b" or "a.b.*") covers the module at `path`."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return any(module == p or (p.endswith(".*") and (module == p[:-2] or module.startswith(p[:-1]))) for p in UNCHECKED)


def test_every_type_ignore_says_why() -> None:
    unexplained = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if _unchecked(path):
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                found = IGNORE.search(line)
                if found and not WITH_REASON.match(found["rest"].strip()):
                    unexplained.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not unexplained, "write `# type: ignore[code]  # why` (or fix the type):\n" + "\n".join(unexplained)
