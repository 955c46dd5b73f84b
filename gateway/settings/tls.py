"""TLS client settings and secret files, shared by the site sections that cross a network.

Its own module because both gateway/settings/site.py (MQTT ingest brokers) and
gateway/settings/alerts.py (the alert publisher) use them, and alerts.py must not import site.py.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TlsConfig(BaseModel):
    """A TLS client: the CA that signs the server, an optional client certificate, the name check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: Path | None = Field(None, description="PEM CA bundle that signs the server; default: the system's CAs.")
    cert_file: Path | None = Field(None, description="PEM client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="PEM key of cert_file, if it is not in that file.")
    insecure: bool = Field(False, description="Skip the server name check (the CA is still checked); test benches only.")

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("tls.key_file is set without tls.cert_file; give the client certificate too")
        return self

    def client_context(self) -> ssl.SSLContext:
        """The client context: server certificate checked against `ca_file` (or the system's CAs),
        its name checked unless `insecure`, the client certificate loaded when given.

        Raises:
            OSError, ssl.SSLError: a file is missing, unreadable or not PEM.
        """
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        if self.insecure:
            ctx.check_hostname = False
        return ctx


def read_secret_file(path: Path, where: str) -> str:
    """The content of a file holding one secret, whitespace stripped.

    Raises:
        ValueError: naming `where` and the path (never the content) when it cannot be read.
    """
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read {path}: {exc.strerror}; check the path and its permissions") from None
