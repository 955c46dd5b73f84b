"""Load the factor library (config/factors/*.toml) and site overrides into an analytics FactorTable.

Each TOML file holds an array of tables named `factor`:

    [[factor]]
    id = "cn.bfg"
    kind = "fuel"
    unit = "1e4Nm3"
    ncv_gj_per_unit = 33.000
    ...

The entry keys are those of analytics.factors. Errors are ConfigError naming the file and the entry.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from analytics.factors import FactorTable, FactorTableError
from gateway.errors import ConfigError

SITE_OVERRIDES = "site overrides"


def default_factor_dir() -> Path:
    """The repository's factor library directory (config/factors)."""
    return Path(__file__).resolve().parents[1] / "config" / "factors"


def _expand(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(p.glob("*.toml"))
            if not found:
                raise ConfigError(f"factor library {p}: no *.toml files in this directory; check the path")
            files.extend(found)
        else:
            files.append(p)
    return files


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"factor library {path}: file not found; check the path") from None
    except OSError as exc:
        raise ConfigError(f"factor library {path}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"factor library {path}: invalid TOML: {exc}") from exc
    unknown = sorted(set(doc) - {"factor"})
    if unknown:
        raise ConfigError(
            f"factor library {path}: unknown top-level key(s) {unknown}; entries go in [[factor]] tables"
        )
    entries = doc.get("factor", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"factor library {path}: 'factor' must be an array of tables ([[factor]])")
    return entries


def load_factor_table(paths: Sequence[Path], overrides: Sequence[Mapping[str, Any]] = ()) -> FactorTable:
    """Read factor TOML files (a directory means its *.toml files, sorted) and site overrides.

    Args:
        paths: TOML files or directories, e.g. [default_factor_dir()].
        overrides: extra entries from the site configuration (lab values, site factors), each a
            dict with the same keys, typically with `overrides = "<default id>"` and a validity.

    Returns:
        The validated FactorTable.

    Raises:
        ConfigError: a file is missing or not TOML, or an entry is invalid; the message names the
            file (or "site overrides") and the entry.
    """
    entries: list[Mapping[str, Any]] = []
    origin: list[str] = []
    for path in _expand(paths):
        for i, entry in enumerate(_read(path)):
            entries.append(entry)
            origin.append(f"{path} entry #{i}")
    for i, entry in enumerate(overrides):
        entries.append(entry)
        origin.append(f"{SITE_OVERRIDES} entry #{i}")
    try:
        return FactorTable(entries)
    except FactorTableError as exc:
        where = _locate(exc, entries, origin)
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from exc


def _locate(exc: FactorTableError, entries: list[Mapping[str, Any]], origin: list[str]) -> str:
    """Name the file(s) and entry numbers behind the ids an error mentions."""
    places: list[str] = []
    for fid in exc.factor_ids:
        places.extend(
            origin[i] for i, e in enumerate(entries) if isinstance(e, Mapping) and e.get("id") == fid
        )
    if not places:
        # The entry had no usable id: FactorTableError says "factor entry #k" with k the global index.
        msg = str(exc)
        for i, where in enumerate(origin):
            if msg.startswith(f"factor entry #{i}:"):
                return where
    return "; ".join(dict.fromkeys(places))


def site_factor_table(library: Sequence[Path], overrides: Sequence[Mapping[str, Any]]) -> FactorTable:
    """The factor table of a site: its library paths (default: the shipped config/factors) and overrides."""
    return load_factor_table(list(library) or [default_factor_dir()], overrides)


def factor_table_of(section: Any) -> FactorTable:
    """The factor table a site's [factors] section names: its library paths and overrides."""
    return site_factor_table(section.library, [o.model_dump(exclude_none=True) for o in section.overrides])
