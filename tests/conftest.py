"""Fixtures for the real peers (tests/services). Nothing here starts unless a test asks for it."""

import re
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.services.influxd import InfluxService
from tests.services.modbus_tk_slave import ModbusTkSlave
from tests.services.mosquitto import MosquittoService
from tests.services.socat import SocatPtyPair
from tests.support.mqtt_alerts import Subscriber

# Tests stop gateways with SIGINT as Ctrl-C would. A shell that starts the suite in the background
# (`(make test &)`, some CI runners) hands it SIGINT ignored, every child inherits that, and a
# Python child then installs no KeyboardInterrupt handler: the gateway would not stop. Restore the
# default here, so the children start with it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoService]:
    """One broker for the session. Do not stop or restart it: use `mosquitto_factory`."""
    with MosquittoService() as broker:
        yield broker


@pytest.fixture
def mosquitto_factory() -> Iterator[Callable[..., MosquittoService]]:
    """make(config_extra="", *, allow_anonymous=True, password_file=None) -> a started broker
    of this test's own, closed at teardown; stop()/restart() it freely."""
    with ExitStack() as stack:

        def make(config_extra: str = "", *, allow_anonymous: bool = True, password_file: Path | None = None) -> MosquittoService:
            broker = MosquittoService(config_extra, allow_anonymous=allow_anonymous, password_file=password_file)
            return stack.enter_context(broker)

        yield make


@pytest.fixture(scope="session")
def influxdb() -> Iterator[InfluxService]:
    """One influxd for the session, database "emgate" created. Use `influxdb_factory` for outages."""
    with InfluxService() as server:
        yield server


@pytest.fixture
def influxdb_factory() -> Iterator[Callable[..., InfluxService]]:
    """make(*, flux=True) -> a started influxd of this test's own (stop()/start() freely),
    closed at teardown. flux=False starts in well under a second instead of about 6 s."""
    with ExitStack() as stack:

        def make(*, flux: bool = True) -> InfluxService:
            return stack.enter_context(InfluxService(flux=flux))

        yield make


@pytest.fixture
def modbus_tk_slave() -> Iterator[Callable[[dict[str, Any]], ModbusTkSlave]]:
    """make(spec) -> a started modbus-tk slave (see tests/services/modbus_tk_slave.py for the
    spec); everything made is closed at teardown."""
    with ExitStack() as stack:
        yield lambda spec: stack.enter_context(ModbusTkSlave(spec))


@pytest.fixture
def socat_pair() -> Iterator[Callable[[], SocatPtyPair]]:
    """make() -> a started SocatPtyPair (devices `.a` and `.b`), closed at teardown."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(SocatPtyPair())


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> str:
    """An MQTT topic prefix no other test uses, e.g. "emgate-test/test_x/1f2e3d4c"."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    return f"emgate-test/{name}/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def subscribers() -> Iterator[list[Subscriber]]:
    """mosquitto_sub processes a test starts (tests/support/mqtt_alerts.py); closed after it."""
    subs: list[Subscriber] = []
    yield subs
    for s in subs:
        s.close()
