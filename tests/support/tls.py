"""A throw-away PKI for TLS tests, made with the openssl CLI (no Python crypto package needed).

`make_pki(d)` writes into `d`:
    ca.crt, ca.key                 the test CA
    server.crt, server.key         signed by it, for 127.0.0.1 and localhost
    wrong-name.crt, wrong-name.key signed by it, for "elsewhere.invalid" only (a name mismatch)
    client.crt, client.key         signed by it (mutual TLS)
    other-ca.crt, other-ca.key     a second CA that signed none of them (a CA mismatch)
EC P-256 keys: a few milliseconds each, where RSA 2048 takes a good part of a second.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.services.binaries import require_binary

_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([str(require_binary("openssl")), *args], cwd=cwd, check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    _openssl(
        "req", "-x509", *_EC, "-days", "2", "-subj", f"/CN=emgate {name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d
    )


def _leaf(d: Path, name: str, san: str | None) -> None:
    _openssl("req", *_EC, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext: list[str] = []
    if san is not None:
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        ext = ["-extfile", f"{name}.ext"]
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        f"{name}.crt",
        *ext,
        cwd=d,
    )


def make_pki(d: Path) -> Path:
    """Write the CA, the server, wrong-name and client certificates and a second CA into `d`; returns `d`."""
    _ca(d, "ca")
    _ca(d, "other-ca")
    _leaf(d, "server", "IP:127.0.0.1,DNS:localhost")
    _leaf(d, "wrong-name", "DNS:elsewhere.invalid")
    _leaf(d, "client", None)
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d
