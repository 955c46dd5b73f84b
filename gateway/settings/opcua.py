"""The [opcua] section of the site file: OPC UA servers and the nodes read from them.

Kept apart from gateway/settings/site.py, which imports these models; this module must not import
gateway.settings.site. Every model forbids unknown keys and is frozen, like the other sections.

    [[opcua.servers]]
    name = "dcs"
    url = "opc.tcp://10.1.2.3:4840"
    mode = "subscribe"            # or "poll"
    [[opcua.servers.nodes]]
    node = "ns=2;s=BF1.Gas.Flow"  # NodeId (i=, s=, g=, b=) or a browse path "/0:Objects/2:BF1/2:Flow"
    signal = "bf1_gas_flow"
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.settings.tls import read_secret_file

SignalName = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.\-]+$")]

# ns=<index>;<i|s|g|b>=<identifier>, or i=<number> in namespace 0; or a browse path from Objects
_NODE_ID = re.compile(
    r"^(ns=\d+;)?(i=\d+|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|b=.+)$"
)
_BROWSE_ELEMENT = re.compile(r"^\d+:.+$")


def node_spec_problem(spec: str) -> str | None:
    """Why `spec` is neither a NodeId string nor a browse path, or None."""
    if spec.startswith("/"):
        parts = [p for p in spec.split("/") if p]
        if not parts:
            return "a browse path needs at least one element (/0:Objects/2:Plant/2:Flow)"
        bad = [p for p in parts if not _BROWSE_ELEMENT.match(p)]
        if bad:
            return f"browse path element {bad[0]!r} is not NAMESPACE:BrowseName (2:Flow)"
        return None
    if not _NODE_ID.match(spec):
        return "is not a NodeId (ns=2;i=5, ns=2;s=Name, ns=2;g=GUID, ns=2;b=BASE64) nor a browse path (/0:Objects/2:Name)"
    return None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpcUaNodeConfig(_Section):
    """One variable read into one signal."""

    node: str = Field(
        min_length=1,
        description="NodeId (ns=2;i=5, ns=2;s=Name, ns=2;g=GUID, ns=2;b=BASE64) or a browse path from the "
        "Objects folder (/0:Objects/2:Plant/2:Flow), resolved on every connect.",
    )
    signal: SignalName
    scale: float = Field(1.0, description="Multiplies the value (engineering units = raw x scale + offset).")
    offset: float = 0.0

    @field_validator("node")
    @classmethod
    def _node_spec(cls, node: str) -> str:
        problem = node_spec_problem(node)
        if problem:
            raise ValueError(f"node {node!r}: {problem}")
        return node


class OpcUaServerConfig(_Section):
    """One OPC UA server: one session, one subscription (or one polled read) for its nodes."""

    name: SignalName
    url: str = Field(description="opc.tcp://HOST:PORT[/PATH] of the server's endpoint.")
    mode: Literal["subscribe", "poll"] = Field(
        "subscribe", description="subscribe: monitored items, the server reports changes; poll: one Read every poll_s."
    )
    poll_s: float = Field(1.0, gt=0, le=3600, description="poll mode: seconds between reads.")
    publishing_interval_ms: float = Field(
        1000.0, gt=0, le=3_600_000, description="subscribe mode: the subscription's publishing interval."
    )
    sampling_interval_ms: float = Field(
        1000.0, ge=0, le=3_600_000, description="subscribe mode: each monitored item's sampling interval."
    )
    queue_size: int = Field(10, ge=1, le=10_000, description="subscribe mode: each monitored item's queue on the server.")
    timestamp: Literal["source", "server", "gateway"] = Field(
        "source",
        description="The sample time: the value's SourceTimestamp, its ServerTimestamp, or the gateway's clock on "
        "receipt. A missing timestamp falls back to the next one in that order.",
    )
    timeout_s: float = Field(5.0, gt=0, le=300, description="Per request; a server silent this long is lost.")
    watchdog_s: float = Field(
        2.0, gt=0, le=300, description="Seconds between keep-alive reads of the server state; a failed one reconnects."
    )
    node_retry_s: float = Field(
        10.0, gt=0, le=3600, description="Seconds between attempts to resolve nodes the server does not know (yet)."
    )
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate_file: Path | None = Field(None, description="Client certificate (DER or PEM) for Basic256Sha256.")
    private_key_file: Path | None = Field(None, description="Key of certificate_file (PEM).")
    server_certificate_file: Path | None = Field(
        None,
        description="The trusted server certificate (DER or PEM): the server is trusted only if it holds this "
        "certificate's key. With Basic256Sha256 give this or server_trust_dir.",
    )
    server_trust_dir: Path | None = Field(
        None,
        description="A trust list: a directory of server certificates (*.der, *.pem); the certificate the server "
        "presents must be one of them, or the session is refused before any password is sent.",
    )
    username: str | None = Field(None, description="User for servers that require one (UserName token).")
    password: SecretStr | None = Field(None, description="Better kept out of the site file: use password_file.")
    password_file: Path | None = Field(None, description="File holding the password, whitespace stripped.")
    nodes: list[OpcUaNodeConfig] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _opc_tcp(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "opc.tcp" or not parts.hostname:
            raise ValueError(f"url {url!r} is not opc.tcp://HOST:PORT[/PATH]")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"url {url!r}: the port is not a number from 1 to 65535") from None
        if parts.username or parts.password:
            raise ValueError("url: put no credentials in the URL; use username and password_file")
        return url

    @model_validator(mode="after")
    def _security(self) -> OpcUaServerConfig:
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError(
                f"server {self.name!r}: security_policy {self.security_policy!r} with security_mode "
                f"{self.security_mode!r}; use None with None, or Basic256Sha256 with Sign or SignAndEncrypt"
            )
        if self.security_policy != "None":
            missing = [k for k in ("certificate_file", "private_key_file") if getattr(self, k) is None]
            if self.server_certificate_file is None and self.server_trust_dir is None:
                missing.append("server_certificate_file or server_trust_dir")
            if missing:
                raise ValueError(f"server {self.name!r}: security_policy {self.security_policy} needs {', '.join(missing)}")
        if self.password is not None and self.password_file is not None:
            raise ValueError(f"server {self.name!r}: give password or password_file, not both")
        if (self.password is not None or self.password_file is not None) and not self.username:
            raise ValueError(f"server {self.name!r}: a password needs a username")
        seen: set[str] = set()
        for node in self.nodes:
            if node.signal in seen:
                raise ValueError(f"server {self.name!r}: signal {node.signal!r} is read from two nodes")
            seen.add(node.signal)
        return self

    def password_value(self) -> str | None:
        """The password, from `password` (or EMGATE__... in the environment) or `password_file`.

        Raises:
            ValueError: the password file cannot be read (names the file, never the content).
        """
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return read_secret_file(self.password_file, f"opcua server '{self.name}' password_file")
        return None

    @property
    def endpoint(self) -> str:
        return f"opcua '{self.name}' {self.url}"


class OpcUaConfig(_Section):
    servers: list[OpcUaServerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> OpcUaConfig:
        seen: set[str] = set()
        for server in self.servers:
            if server.name in seen:
                raise ValueError(f"opcua.servers: server name {server.name!r} is used twice; names must be unique")
            seen.add(server.name)
        return self
