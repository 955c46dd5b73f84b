"""Turn a site file into settings, or into a list of problems a person can act on.

Each problem names the key path (`modbus.devices[0].points[2].adress`), the line in the file
where that key (or its table) is written, and what to check. pydantic's errors carry the key
path; tomllib keeps no positions, so `_KeyLines` re-reads the text to find them.

A file that validates is then checked against the factor library it names
(gateway.settings.factors.site_factor_problems): a stream's misspelt factor id is a configuration
problem like a misspelt key, reported with its line before any command starts work.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

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


_HINTS = {
    "extra_forbidden": "unknown key; check its spelling against `emgate config-schema` or config/examples/",
    "missing": "required key is missing",
}


def load_settings(path: Path) -> GatewaySettings:
    """Read and validate a site file. Raises ConfigError listing every problem with its key path
    and line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; check the --config path") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}; check its permissions") from None
    try:
        text = raw.decode("utf-8")
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
    try:
        settings = GatewaySettings(**data)
    except ValidationError as exc:
        lines = _KeyLines(text)
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = _format_loc(loc)
            line = lines.find(tuple(str(p) for p in loc))
            at = f"{path}:{line}" if line else str(path)
            hint = _HINTS.get(err["type"], "")
            msg = err["msg"].removeprefix("Value error, ")
            text_ = f"{at}: {where}: {msg}" + (f" ({hint})" if hint and hint not in msg else "")
            problems.append(text_)
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems) from None
    factor_problems: list[tuple[tuple[Any, ...], str]] = [*site_factor_problems(settings), *settings.balance_problems()]
    if factor_problems:
        lines = _KeyLines(text)
        problems = []
        for loc, msg in factor_problems:
            line = lines.find(tuple(str(p) for p in loc))
            problems.append(f"{path}:{line}: {_format_loc(loc)}: {msg}" if line else f"{path}: {_format_loc(loc)}: {msg}")
        raise ConfigError(f"{path}: {len(problems)} problem(s)", problems)
    return settings


def _evidence_beside_site_file(data: dict[str, Any], path: Path) -> None:
    """A relative `[[production]] evidence` path is relative to the site file, as a reader expects."""
    entries = data.get("production")
    if not isinstance(entries, list):
        return
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("evidence"), str) and not Path(entry["evidence"]).is_absolute():
            entry["evidence"] = str(Path(path).parent / entry["evidence"])
