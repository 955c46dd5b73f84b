"""Finding the peers' executables, and what a missing one means.

Outside CI a missing binary skips the test with a reason that names it; with CI=true it fails
the test, because a real peer that cannot start in CI is a broken pipeline, not a skip.
"""

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

# Debian installs mosquitto in /usr/sbin, which is not on a normal user's PATH.
_EXTRA_DIRS = (Path("/usr/sbin"), Path("/sbin"), Path("/usr/local/sbin"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_binary(reason: str) -> NoReturn:
    """Skip the current test (locally) or fail it (CI=true) because a peer is unavailable."""
    message = f"{reason}; run `make services` to install it"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_binary(name: str, *, env_var: str | None = None, default: Path | None = None) -> Path:
    """Path of the executable `name`, or skip/fail the test via `missing_binary`.

    Args:
        name: executable name looked up on PATH and in the sbin directories.
        env_var: environment variable that, when set, names the executable explicitly.
        default: a path tried before PATH (for binaries we build into a cache).
    """
    if env_var and os.environ.get(env_var):
        explicit = Path(os.environ[env_var])
        if os.access(explicit, os.X_OK):
            return explicit
        missing_binary(f"{name}: {env_var}={explicit} is not an executable file")
    if default is not None and os.access(default, os.X_OK):
        return default
    found = shutil.which(name)
    if found:
        return Path(found)
    for directory in _EXTRA_DIRS:
        candidate = directory / name
        if os.access(candidate, os.X_OK):
            return candidate
    where = f"{default}, " if default is not None else ""
    missing_binary(f"{name} not found (looked in {where}PATH and {', '.join(map(str, _EXTRA_DIRS))})")
