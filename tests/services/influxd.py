"""A real InfluxDB OSS 1.8.10 (built by scripts/install-services.sh) on free loopback ports.

The client side here is plain urllib on purpose: the tests check what the gateway wrote with
an implementation independent of the influxdb-client library the gateway uses.
"""

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.services.binaries import require_binary
from tests.services.flux_csv import parse_annotated_csv
from tests.services.ports import free_port
from tests.services.process import ServiceProcess

INFLUXD_VERSION = "1.8.10"
DEFAULT_BINARY = Path.home() / ".cache" / "emgate" / f"influxd-{INFLUXD_VERSION}" / "influxd"
START_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 10.0
# What a site running influxd on a small edge box next to the gateway would set; the tests and
# bench.ledger_drain run with it, so the bench measures the server the tests use. Measured side by
# side on 2 cores (9-field points, 10,000 series, three runs each): influxd spent ~47 us of CPU per
# point at defaults, much of it in the Go collector and allocator; with GOGC=400 (collect when the
# heap has grown 4x instead of 1x since the last collection) ~38 us, for a larger peak heap (2.5 GB
# resident on the full 24 h bench; not measured at the default).
# Tried and left at the default because they made no measurable difference: index-version tsi1,
# cache-snapshot-memory-size 64 MB, wal-fsync-delay 50 ms; gzip request bodies did not help on
# loopback (one unpaired run). max-concurrent-compactions defaults to half the cores (1 here), which is what we want.
SERVER_TUNING = {"GOGC": "400"}


class InfluxQueryError(RuntimeError):
    """influxd answered a write or query with an error."""


class InfluxService(ServiceProcess):
    """influxd with its own meta/data/wal dirs, HTTP on `url`, RPC on `rpc_port`.

    Client settings for the gateway: `url`, `token`, `org`, `bucket` (influxdb-client's v2 API
    against 1.8's compatibility endpoints). `stop()`/`start()` keep ports and data, for outage
    tests; `close()` removes the data.

    Args:
        flux: serve Flux on /api/v2/query. influxd then compiles the Flux stdlib at every
            start (about 6 s on 2 cores); writes, including /api/v2/write, work without it.
    """

    host = "127.0.0.1"
    database = "emgate"
    bucket = "emgate/autogen"
    org = "-"
    token = "user:password"  # auth is disabled, so any user:password is accepted
    start_timeout_s = START_TIMEOUT_S

    def __init__(self, *, flux: bool = True) -> None:
        self.flux_enabled = flux
        self.binary = require_binary("influxd", env_var="EMGATE_INFLUXD", default=DEFAULT_BINARY)
        self.http_port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://{self.host}:{self.http_port}"
        super().__init__("influxd", log_name=f"influxd-{self.http_port}")
        self.data_dir = self.tmp_dir

    @property
    def name(self) -> str:
        return f"influxd on {self.url}"

    def command(self) -> list[str | os.PathLike[str]]:
        return [self.binary, "run", "-config", os.devnull]

    def environment(self) -> dict[str, str]:
        # Drop inherited INFLUXDB_* so a developer's shell cannot change the test server.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INFLUXDB_", "GOGC", "GOMEMLIMIT"))}
        env.update(SERVER_TUNING)
        env.update(
            INFLUXDB_REPORTING_DISABLED="true",
            INFLUXDB_BIND_ADDRESS=f"{self.host}:{self.rpc_port}",
            INFLUXDB_HTTP_BIND_ADDRESS=f"{self.host}:{self.http_port}",
            INFLUXDB_HTTP_FLUX_ENABLED="true" if self.flux_enabled else "false",
            INFLUXDB_HTTP_LOG_ENABLED="false",
            INFLUXDB_META_DIR=str(self.tmp_dir / "meta"),
            INFLUXDB_DATA_DIR=str(self.tmp_dir / "data"),
            INFLUXDB_DATA_WAL_DIR=str(self.tmp_dir / "wal"),
            INFLUXDB_MONITOR_STORE_ENABLED="false",
            INFLUXDB_LOGGING_LEVEL="warn",
        )
        return env

    @property
    def readiness(self) -> str:
        return f"answering {self.url}/ping"

    def ready(self) -> bool:
        try:
            status, _ = self._request("GET", "/ping")
        except (OSError, InfluxQueryError):
            return False
        return status == 204

    def _after_ready(self) -> None:
        self.influxql(f'CREATE DATABASE "{self.database}"')  # idempotent

    def _request(
        self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace").strip()
            raise InfluxQueryError(f"{method} {self.url}{path} -> HTTP {exc.code}: {detail}") from exc

    def write(self, line_protocol: str, *, precision: str = "ns") -> None:
        """POST line protocol to /write into `database` (expects 204)."""
        query = urllib.parse.urlencode({"db": self.database, "precision": precision})
        status, body = self._request("POST", f"/write?{query}", body=line_protocol.encode())
        if status != 204:
            raise InfluxQueryError(f"write to {self.url} answered {status}: {body[:200]!r}")

    def influxql(self, query: str) -> dict[str, Any]:
        """Run InfluxQL against `database` on /query and return the decoded JSON.

        SELECT and SHOW go by GET; other statements (CREATE, DROP, ...) by POST, because
        influxd 1.x refuses to change data through GET. Raises InfluxQueryError when the
        server or any statement reports an error.
        """
        params = urllib.parse.urlencode({"db": self.database, "q": query})
        read_only = query.lstrip().upper().startswith(("SELECT", "SHOW"))
        if read_only:
            _, body = self._request("GET", f"/query?{params}")
        else:
            _, body = self._request(
                "POST",
                "/query",
                body=params.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        result: dict[str, Any] = json.loads(body)
        errors = [result.get("error")] + [r.get("error") for r in result.get("results", [])]
        if any(errors):
            raise InfluxQueryError(f"influxql {query!r} on {self.url}: {[e for e in errors if e]}")
        return result

    def flux(self, query: str) -> list[dict[str, object]]:
        """Run a Flux query on /api/v2/query and return the rows of the annotated CSV.

        Flux in 1.8 is v0.65: `from()` needs `range()`, and the bucket is "emgate/autogen".
        """
        payload = {
            "query": query,
            "type": "flux",
            "dialect": {"header": True, "delimiter": ",", "annotations": ["datatype", "group", "default"]},
        }
        _, body = self._request(
            "POST",
            "/api/v2/query",
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/csv"},
        )
        return parse_annotated_csv(body.decode())
