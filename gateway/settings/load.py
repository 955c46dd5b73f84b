"""Turn a site file into settings, or into a list of problems a person can act on.

Each problem names the key path (`modbus.devices[0].points[2].adress`), the line in the file
where that key (or its table) is written, and what to check. pydantic's errors carry the key
path; tomllib keeps no positions, so `_KeyLines` re-reads the text to find them.

A file that validates is then checked against the factor library it names
(gateway.settings.factors.site_factor_problems): a stream's misspelt factor id is a configuration
problem like a misspelt key, reported with its line before any command starts work.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from gateway.core.errors import ConfigError
from gateway.settings.factors import site_factor_problems
from gateway.settings.site import GatewaySettings

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]+"|'[^']+'|[A-Za-z0-9_\-]+)\s*=""")


class _KeyLines:
    """Maps key paths to line numbers for the common TOML shapes (tables, arrays of tables, keys)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        counts: dict[tuple[str, ...], int] = {}
        current: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                parts = tuple(p.strip().strip('"') for p in header.group(2).split("."))
                path = self._resolve(parts, counts)
                if header.group(1) == "[[":
                    index = counts.get(path, -1) + 1
                    counts[path] = index
                    path = (*path, str(index))
                current = path
                self.lines.setdefault(current, number)
                continue
            key = _KEY.match(line)
            if key:
                self.lines.setdefault((*current, key.group(1).strip("\"'")), number)

    def _resolve(self, parts: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> tuple[str, ...]:
        # [[a.b]] inside the latest [[a]] element: insert the element index after a.
        out: list[str] = []
        for part in parts:
            out.append(part)
            idx = counts.get(tuple(out))
            if idx is not None and part != parts[-1]:
                out.append(str(idx))
        return tuple(out)

    def find(self, loc: tuple[str, ...]) -> int | None:
        for end in range(len(loc), 0, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return None


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


#: A site file larger than this is refused unread (a 10,000-signal plant's file is about 2 MB).
MAX_SITE_FILE_BYTES = 64 * 2**20

_HINTS = {
    "extra_forbidden": "unknown key; check its spelling against `emgate config-schema` or config/examples/",
    "missing": "required key is missing",
}


def load_settings(path: Path) -> GatewaySettings:
    """Read and validate a site file. Raises ConfigError listing every problem with its key path
    and line."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SITE_FILE_BYTES + 1)  # bounded: /dev/zero or a wrong path never fills memory
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; check the --config path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; give the site's TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}; check its permissions") from None
    if len(raw) > MAX_SITE_FILE_BYTES:
        raise ConfigError(
            f"{path}: longer than {MAX_SITE_FILE_BYTES // 2**20} MiB, not a site file; check the --config path"
        )
    try:
        # utf-8-sig: a byte order mark, which some Windows editors write, is not part of the TOML
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}, line {line}); "
            "save the file as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib ends its message with "(at line N, column M)" or "(at end of document)"
        at = re.search(r"\(at line (\d+)", str(exc))
        line = int(at.group(1)) if at else text.count("\n") + 1
        raise ConfigError(f"{path}:{line}: not valid TOML: {exc}") from None
    return settings_from_data(data, path, text)


def settings_from_data(data: dict[str, Any], path: Path, text: str) -> GatewaySettings:
    """Validate a site file's parsed TOML (`data`, possibly amended by the caller) and its factors.

    `path` and `text` are the file's name and content, for the lines the problems name. Raises
    ConfigError with every problem found.
    """
    # BaseSettings.__init__ takes options named _env_file, _secrets_dir, ... as keyword arguments:
    # passed through, a top-level `_env_file = "/etc/x"` would read that file instead of being
    # refused as an unknown key like any other.
    private = [key for key in data if key.startswith("_")]
    if private:
        lines = _KeyLines(text)
        problems = [
            f"{path}:{lines.find((key,))}: {key}: {_HINTS['extra_forbidden']}"
            if lines.find((key,))
            else f"{path}: {key}: {_HINTS['extra_forbidden']}"
            for key in private
        ]
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    _evidence_beside_site_file(data, path)
    non_finite = _non_finite_numbers(data, ())
    try:
        settings = GatewaySettings(**data)
    except SettingsError as exc:  # an EMGATE__<SECTION> variable that is not JSON; str(exc) holds no value
        names = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX))
        raise ConfigError(
            f"environment: {exc} (set: {', '.join(names) or 'none'}); give a section as JSON "
            "(EMGATE__INFLUX='{\"enabled\": true}') or key by key (EMGATE__INFLUX__ENABLED=true)"
        ) from None
    except ValidationError as exc:
        lines = _KeyLines(text)
        problems = _non_finite_problems(non_finite, path, lines)
        for err in exc.errors():
            loc = tuple(err["loc"])
            if loc in non_finite:
                continue  # said already, in the words for every number
            where = _format_loc(loc)
            env = _env_variable(loc)
            line = None if env else lines.find(tuple(str(p) for p in loc))
            at = f"{path}:{line}" if line else f"environment variable {env}" if env else str(path)
            hint = _HINTS.get(err["type"], "")
            msg = err["msg"].removeprefix("Value error, ")
            text_ = f"{at}: {where}: {msg}" + (f" ({hint})" if hint and hint not in msg else "")
            problems.append(text_)
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems) from None
    if non_finite:
        problems = _non_finite_problems(non_finite, path, _KeyLines(text))
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    factor_problems: list[tuple[tuple[Any, ...], str]] = [*site_factor_problems(settings), *settings.balance_problems()]
    duplicates = settings.duplicate_problems()
    if factor_problems or duplicates:
        lines = _KeyLines(text)  # only now: a 10,000-signal file takes a while to index
        for loc, msg, first in duplicates:
            first_line = lines.find(tuple(str(p) for p in first))
            if first_line:  # both places: the key path of the first use gets its line too
                first_at = _format_loc(first)
                msg = msg.replace(first_at, f"{first_at} ({path}:{first_line})", 1)
            factor_problems.append((loc, msg))
        problems = []
        for loc, msg in factor_problems:
            line = lines.find(tuple(str(p) for p in loc))
            problems.append(f"{path}:{line}: {_format_loc(loc)}: {msg}" if line else f"{path}: {_format_loc(loc)}: {msg}")
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    return settings


def _non_finite_numbers(value: Any, loc: tuple[int | str, ...]) -> dict[tuple[int | str, ...], float]:
    """Key path -> value of every nan or inf in the parsed file. No setting means anything by
    them (a scale, a bound, an allowance, a gap): TOML writes them as plain `nan` and `inf`, and
    taken in they turn every figure they touch into nan or inf."""
    out: dict[tuple[int | str, ...], float] = {}
    if isinstance(value, float):
        if not math.isfinite(value):
            out[loc] = value
    elif isinstance(value, dict):
        for key, item in value.items():
            out.update(_non_finite_numbers(item, (*loc, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.update(_non_finite_numbers(item, (*loc, i)))
    return out


def _non_finite_problems(found: dict[tuple[int | str, ...], float], path: Path, lines: _KeyLines) -> list[str]:
    problems = []
    for loc, value in found.items():
        line = lines.find(tuple(str(p) for p in loc))
        at = f"{path}:{line}" if line else str(path)
        problems.append(f"{at}: {_format_loc(loc)}: {value} is not a finite number; give a number (nan and inf are refused)")
    return problems


ENV_PREFIX = "EMGATE__"


def _env_variable(loc: tuple[int | str, ...]) -> str | None:
    """The EMGATE__ variable that set the key at `loc` (or its section), if one is set."""
    keys: list[str] = []
    for part in loc:
        if isinstance(part, int):
            break
        keys.append(str(part))
    by_upper = {k.upper(): k for k in os.environ}
    for end in range(len(keys), 0, -1):
        name = by_upper.get(ENV_PREFIX + "__".join(keys[:end]).upper())
        if name is not None:
            return name
    return None


def _evidence_beside_site_file(data: dict[str, Any], path: Path) -> None:
    """A relative `[[production]]` or `[[cbam.precursors]]` evidence path is relative to the site file, as a reader expects."""
    cbam = data.get("cbam")
    lists = (data.get("production"), cbam.get("precursors") if isinstance(cbam, dict) else None)
    for entry in (e for entries in lists if isinstance(entries, list) for e in entries):
        if isinstance(entry, dict) and isinstance(entry.get("evidence"), str) and not Path(entry["evidence"]).is_absolute():
            entry["evidence"] = str(Path(path).parent / entry["evidence"])


def key_locator(path: Path) -> Callable[[tuple[int | str, ...]], str]:
    """A function giving `FILE:LINE: key.path` for a key path of the site file at `path` (read again;
    `FILE: key.path` when the line is not found), for problems found after loading."""
    try:
        with path.open("rb") as file:
            text = file.read(MAX_SITE_FILE_BYTES).decode("utf-8-sig", errors="replace")
    except OSError:
        text = ""
    lines = _KeyLines(text)

    def where(loc: tuple[int | str, ...]) -> str:
        line = lines.find(tuple(str(p) for p in loc))
        return f"{path}:{line}: {_format_loc(loc)}" if line else f"{path}: {_format_loc(loc)}"

    return where
