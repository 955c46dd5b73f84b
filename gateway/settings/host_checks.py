"""What a site file asks of the machine it runs on, checked by `emgate check-config`.

Validation (gateway.settings.site) checks the file on its own; these checks look at this host:
the files the settings name (TLS certificates and keys, token and password files) exist and can
be read, the ledger's path can hold the ledger, the status page's address belongs to this
machine. Without them `check-config` said ok to a file that `run` then refused.

Files holding a secret (a token, a password, a private key) that the group or others may read
are a warning, not an error: the gateway works, but anyone with an account on the box can take
the secret.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from gateway.settings.site import GatewaySettings, split_bind

Loc = tuple[str | int, ...]

#: Settings fields that name a file holding a secret.
SECRET_FILE_FIELDS = frozenset({"token_file", "password_file", "key_file", "private_key_file"})


@dataclass(frozen=True)
class HostProblem:
    loc: Loc  # key path of the setting, for its line in the site file
    message: str
    severity: Literal["error", "warning"] = "error"


def host_problems(settings: GatewaySettings) -> list[HostProblem]:
    """Every file, ledger path and bind address problem of `settings` on this host."""
    problems = [*_file_problems(settings), *ledger_path_problems(settings.ledger.path)]
    problems += bind_problems(settings.http.bind)
    return problems


def _file_problems(settings: GatewaySettings) -> list[HostProblem]:
    problems: list[HostProblem] = []
    for loc, path, secret in _named_files(settings, ()):
        if loc[0] == "influx" and not settings.influx.enabled:
            continue  # not read while [influx] is off
        problems += file_problems(loc, path, secret=secret)
    return problems


def _named_files(model: BaseModel, loc: Loc) -> list[tuple[Loc, Path, bool]]:
    """(key path, path, holds a secret) of every `*_file` setting given, at any depth."""
    out: list[tuple[Loc, Path, bool]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Path) and name.endswith("_file"):
            # a client certificate without key_file carries its key in the same file
            secret = name in SECRET_FILE_FIELDS or (name == "cert_file" and getattr(model, "key_file", True) is None)
            out.append(((*loc, name), value, secret))
        elif isinstance(value, BaseModel):
            out += _named_files(value, (*loc, name))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    out += _named_files(item, (*loc, name, i))
    return out


def file_problems(loc: Loc, path: Path, *, secret: bool) -> list[HostProblem]:
    """A file the gateway must read: there, a regular file, readable; a secret one not readable by others."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return [HostProblem(loc, f"{path}: no such file; check the path (relative paths start at the working directory)")]
    except OSError as exc:
        return [HostProblem(loc, f"{path}: cannot be reached ({exc.strerror}); check the path and its directories' permissions")]
    if stat.S_ISDIR(st.st_mode):
        return [HostProblem(loc, f"{path}: is a directory; give the file")]
    if not os.access(path, os.R_OK):
        return [HostProblem(loc, f"{path}: not readable by this user; check its owner and mode")]
    mode = stat.S_IMODE(st.st_mode)
    if secret and mode & 0o077:
        return [
            HostProblem(
                loc,
                f"{path} holds a secret and is readable by its group or others (mode {mode:04o}); run `chmod 600 {path}`",
                "warning",
            )
        ]
    return []


def ledger_path_problems(path: Path) -> list[HostProblem]:
    """The ledger (and its -wal, -shm and .lock files beside it) can be opened or created at `path`."""
    loc: Loc = ("ledger", "path")
    hint = "ledger.path names the SQLite file, e.g. var/ledger.sqlite"
    if path.exists():
        if path.is_dir():
            return [HostProblem(loc, f"{path}: is a directory; {hint}")]
        if not path.is_file():
            return [HostProblem(loc, f"{path}: is not a regular file; {hint}")]
        if not os.access(path, os.R_OK | os.W_OK):
            return [HostProblem(loc, f"{path}: not readable and writable by this user; check its owner and mode")]
    # the nearest existing ancestor: the gateway creates the directories below it
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return [HostProblem(loc, f"{path}: {parent} is not a directory, so the ledger cannot be created below it; {hint}")]
    if not os.access(parent, os.W_OK | os.X_OK):
        what = "the ledger's directory" if parent == path.parent else "the nearest existing directory of the ledger"
        return [
            HostProblem(
                loc,
                f"{path}: {what}, {parent}, is not writable by this user (SQLite writes its journal and a lock "
                "file beside the ledger); check its owner and mode",
            )
        ]
    return []


def bind_problems(bind: str) -> list[HostProblem]:
    """The status page's address resolves to an address of this machine (bound on port 0 to see)."""
    loc: Loc = ("http", "bind")
    host, _ = split_bind(bind)
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return [HostProblem(loc, f"bind {bind!r}: host {host!r} does not resolve ({exc}); check the name or give an IP address")]
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.bind((address[0], 0, *address[2:]))
            return []
        except OSError as exc:
            last = exc
    reason = (
        "it is not an address of this machine"
        if last is not None and last.errno == errno.EADDRNOTAVAIL
        else f"{last.strerror if last is not None else 'no address'}"
    )
    return [
        HostProblem(
            loc, f"bind {bind!r}: the status page cannot listen there: {reason}; use 127.0.0.1 or one of this machine's addresses"
        )
    ]
