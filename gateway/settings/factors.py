"""Load the factor library (config/factors/*.toml) and site overrides into an analytics FactorTable.

Each TOML file holds an array of tables named `factor`:

    [[factor]]
    id = "cn.bfg"
    kind = "fuel"
    unit = "1e4Nm3"
    ncv_gj_per_unit = 33.000
    ...

The entry keys are those of analytics.factors. Errors are ConfigError naming the file and the entry.

A site's factors are checked with its settings (`site_factor_problems`, called by
gateway.settings.load for every command that reads a site file): the table must build and every
stream's `factor` must name an id in it. Each problem carries the key path in the site file
(`streams[2].factor`, `factors.overrides[0].overrides`) so that it can be given a line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from analytics.factors import FactorTable, FactorTableError, UnknownFactorError, close_ids, did_you_mean
from gateway.core.errors import ConfigError
from gateway.settings.shipped import shipped_dir

if TYPE_CHECKING:
    from gateway.settings.site import FactorsConfig, GatewaySettings

SITE_OVERRIDES = "site overrides"


def default_factor_dir() -> Path:
    """The shipped factor library folder (config/factors in the repository), wherever emgate is installed."""
    return shipped_dir("factors")


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
    entries, origin = _gather(paths, overrides)
    try:
        return FactorTable(entries)
    except FactorTableError as exc:
        where = _locate(exc, entries, origin)
        raise ConfigError(f"{where}: {exc}" if where else str(exc)) from exc


def _gather(
    paths: Sequence[Path], overrides: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """Every entry of the library files, then the site overrides, and where each comes from."""
    entries: list[Mapping[str, Any]] = []
    origin: list[str] = []
    for path in _expand(paths):
        for i, entry in enumerate(_read(path)):
            entries.append(entry)
            origin.append(f"{path} entry #{i}")
    for i, override in enumerate(overrides):
        entries.append(override)
        origin.append(f"{SITE_OVERRIDES} entry #{i}")
    return entries, origin


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


def factor_table_of(section: FactorsConfig) -> FactorTable:
    """The factor table a site's [factors] section names: its library paths and overrides."""
    return site_factor_table(section.library, _override_entries(section))


def _override_entries(section: FactorsConfig) -> list[dict[str, Any]]:
    return [o.model_dump(exclude_none=True) for o in section.overrides]


def library_places(library: Sequence[Path]) -> str:
    """The files a site's library ids come from, for messages: '/opt/emgate/config/factors/*.toml'."""
    return ", ".join(f"{p}/*.toml" if Path(p).is_dir() else str(p) for p in (list(library) or [default_factor_dir()]))


def unknown_factor_message(table: FactorTable, factor_id: str, library: Sequence[Path]) -> str:
    """What to say about a factor id the table lacks: the closest known ids and where ids are defined."""
    hint = did_you_mean(close_ids(factor_id, table.ids())) or "; check the spelling"
    return f"no factor {factor_id!r} in the factor library{hint} (the ids are those of {library_places(library)} and [[factors.overrides]])"


class FactorProblem(NamedTuple):
    """A problem with a site's factors. `loc` is the key path in the site file it is written at."""

    loc: tuple[str | int, ...]
    message: str


def site_factor_problems(settings: GatewaySettings) -> list[FactorProblem]:
    """Build the site's factor table and resolve every stream's factor id in it.

    Returns every problem found (none: the table builds and each stream names a known id). A
    library that fails to build stops the check there: its stream ids cannot be resolved.
    """
    section = settings.factors
    overrides = _override_entries(section)
    try:
        entries, origin = _gather(list(section.library) or [default_factor_dir()], overrides)
        table = FactorTable(entries)
    except ConfigError as exc:  # a library file is missing or not TOML
        return [FactorProblem(("factors", "library"), str(exc))]
    except FactorTableError as exc:
        return [_table_problem(exc, entries, origin, len(entries) - len(overrides), section.library)]
    problems = []
    for i, stream in enumerate(settings.streams):
        where = ("streams", i, "factor")
        try:
            gaps = table.uncovered(stream.factor)
        except UnknownFactorError:
            message = unknown_factor_message(table, stream.factor, section.library)
            problems.append(FactorProblem(where, f"stream {stream.process}/{stream.stream}: {message}"))
            continue
        if gaps:  # a minute in a gap could not be computed: refuse it here, not at every minute close
            periods = ", ".join(f"{_iso_or(a, 'the beginning')} to {_iso_or(b, 'no end')}" for a, b in gaps)
            problems.append(
                FactorProblem(
                    where,
                    f"stream {stream.process}/{stream.stream}: factor {stream.factor!r} has no value from {periods}; "
                    "every minute needs one: make it an override (overrides = a library id) of a factor valid then, "
                    "or widen its valid_from/valid_to",
                )
            )
    return problems


def _table_problem(
    exc: FactorTableError, entries: list[Mapping[str, Any]], origin: list[str], first_override: int, library: Sequence[Path]
) -> FactorProblem:
    """Locate a table error at the site override it involves, else at factors.library."""
    involved = [i for fid in exc.factor_ids for i, e in enumerate(entries) if e.get("id") == fid]
    site = [i for i in involved if i >= first_override]
    if not site:
        where = _locate(exc, entries, origin)
        return FactorProblem(("factors", "library"), f"{where}: {exc}" if where else str(exc))
    k = site[0]
    loc: tuple[str | int, ...] = ("factors", "overrides", k - first_override)
    # FactorTableError messages read "factor '<id>': <key>: <problem>"
    key = str(exc).removeprefix(f"factor {entries[k]['id']!r}: ").split(":", 1)[0]
    if key in entries[k]:
        loc = (*loc, key)
    message = str(exc)
    also = [origin[i] for i in involved if i < first_override]
    if also:
        message += f" (see {', '.join(dict.fromkeys(also))})"
    elif key == "overrides":  # the id it names is unknown: say where the ids are
        message += f" (the default ids are those of {library_places(library)})"
    return FactorProblem(loc, message)


def _iso_or(ts: float | None, unbounded: str) -> str:
    """An epoch second as UTC ISO 8601, or `unbounded` for None."""
    if ts is None:
        return unbounded
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
