"""The files emgate ships with its code: the default factor library and the example site files.

They are the repository's config/ folder, which the distribution installs as the data package
`gateway.config` (setup.py maps the folder to that name). This module finds them through
importlib.resources, so the same lookup serves an editable install (the checkout's config/) and
a wheel (site-packages/gateway/config/); nothing here depends on where the source files are.

A site file's `[factors] library` is read as the paths it gives (gateway/settings/factors.py):
only the default library is the shipped one.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from gateway.core.errors import ConfigError

PACKAGE = "gateway.config"


def shipped_dir(name: str) -> Path:
    """The shipped folder `name` ("factors" or "examples"): config/<name> in the repository.

    Raises:
        ConfigError: emgate is not installed (a bare source tree on sys.path) or is imported
            from an archive, where the files have no path of their own.
    """
    try:
        root = files(PACKAGE)
    except ModuleNotFoundError:
        raise ConfigError(
            f"the shipped config/{name} is not installed (package {PACKAGE}); install emgate, from a checkout with `pip install -e .`"
        ) from None
    # Site files and factor files are read by path (and named by path in messages), so the
    # package must be a folder on disk, as pip installs it; a zip import would not be.
    if not isinstance(root, Path):
        raise ConfigError(f"the shipped config/{name} is inside an archive ({root}); install emgate with pip, which unpacks it")
    return root / name


def example_sites() -> dict[str, Path]:
    """The shipped example site files by name ("demo-plant", "uci-steel", ...), in name order."""
    return {p.stem: p for p in sorted(shipped_dir("examples").glob("*.toml"))}


def example_site(name: str) -> Path:
    """The shipped example site file `name` ("uci-steel" or "uci-steel.toml").

    Raises:
        ConfigError: no example has that name; the message lists the names there are.
    """
    examples = example_sites()
    path = examples.get(name.removesuffix(".toml"))
    if path is None:
        raise ConfigError(f"no example site {name!r}; the examples are {', '.join(examples)} (`emgate examples` lists them)")
    return path
