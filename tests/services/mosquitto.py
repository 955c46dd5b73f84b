"""A real mosquitto broker (the Debian package) on a free loopback port."""

import os
import pwd
import re
import time
from pathlib import Path

from tests.services.binaries import require_binary
from tests.services.ports import free_port, tcp_accepts
from tests.services.process import ServiceProcess


class MosquittoService(ServiceProcess):
    """A mosquitto broker with its own config, persistence directory and log.

    The main listener is plain MQTT on 127.0.0.1:`port`. Anything else (TLS listeners,
    websockets, ACL files) goes in `config_extra`, appended verbatim to mosquitto.conf; take
    ports for extra listeners from `tests.services.ports.free_port()`. Example::

        tls_port = free_port()
        MosquittoService(
            f"listener {tls_port} 127.0.0.1\\ncafile {ca}\\ncertfile {crt}\\nkeyfile {key}\\n",
            allow_anonymous=False,
            password_file=pw_file,  # made with `mosquitto_passwd -c -b FILE user pass`
        )

    `restart()` keeps the port and the persistence directory, so retained messages and
    persistent sessions survive it like a real broker restart; `stop()` saves the persistence
    db (SIGTERM).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        config_extra: str = "",
        *,
        allow_anonymous: bool = True,
        password_file: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.binary = require_binary("mosquitto")
        self.port = port if port is not None else free_port()
        super().__init__("mosquitto", log_name=f"mosquitto-{self.port}")
        self.persistence_dir = self.tmp_dir / "data"
        self.persistence_dir.mkdir()
        self.conf_path = self.tmp_dir / "mosquitto.conf"
        self.conf_path.write_text(self._config(config_extra, allow_anonymous, password_file))

    @property
    def name(self) -> str:
        return f"mosquitto on {self.host}:{self.port}"

    def command(self) -> list[str | os.PathLike[str]]:
        return [self.binary, "-c", self.conf_path]

    @property
    def readiness(self) -> str:
        return f"accepting connections on {self.host}:{self.port}"

    def ready(self) -> bool:
        return tcp_accepts(self.host, self.port)

    def _config(self, extra: str, allow_anonymous: bool, password_file: Path | None) -> str:
        lines = [
            "# written by tests/services/mosquitto.py",
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_type subscribe",  # wait_for_subscription() reads these lines
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto 2 drops privileges to the "mosquitto" user, which cannot
            # write our temp dir; staying the current user is what we want for a test peer.
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        if password_file is not None:
            lines.append(f"password_file {password_file}")
        return "\n".join(lines) + "\n" + extra.rstrip("\n") + "\n"

    def wait_for_subscription(self, topic: str, timeout_s: float = 10.0) -> None:
        """Block until some client subscribed to exactly `topic` since the last start.

        Publish only after this returns, or a live (non-retained) message can arrive before
        the subscriber and be lost. Subscriptions restored from a persistent session are not
        logged again by mosquitto, so after a restart this sees only new SUBSCRIBEs.
        """
        # mosquitto logs each subscription as "<time>: <client id> <qos> <topic filter>".
        pattern = re.compile(rf"^\S+: \S+ [0-2] {re.escape(topic)}$", re.MULTILINE)
        deadline = time.monotonic() + timeout_s
        while True:
            if pattern.search(self.log_since_start()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no client subscribed to {topic!r} on {self.host}:{self.port} within {timeout_s}s; "
                    f"check the subscriber's topic filter and {self.log_path}"
                )
            time.sleep(0.02)
