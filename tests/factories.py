"""How tests build what the gateway passes around: minute results, site settings, the shipped examples.

Every test that needs a MinuteResult or a GatewaySettings builds it here, so a change of either
type (a new field, a columnar minute-results type) is made in this one file. A factory gives a
valid value with plain defaults; a test names only the fields its assertions are about.

Minute results: `minute_result(...)` one row, `minute_results(starts, ...)` one row per minute
start (and stream), `results_of(rows)` rows as the columnar MinuteResults that the ledger, the
alert stage and the views take, `T0` a minute boundary to count minutes from.
Settings: `site_settings(**sections)` from a few sections of a site file; `example(name)`,
`example_data(name)` the shipped config/examples; `demo_plant(...)` the demo plant's site
pointed at a test's Modbus port, ledger and InfluxDB; `influx_section(server)` the gateway's
[influx] section for a test peer.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from gateway.core.model import MinuteResult, MinuteResults
from gateway.settings.site import GatewaySettings

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "config" / "examples"  # the checkout's: what the tests check is the repository's

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 60  # a minute boundary in November 2026 (UTC)

# ---- minute results --------------------------------------------------------------------------

# With minute_result's own defaults (process sinter, stream coke_breeze, 10 kg): a measured minute
# of sinter coke breeze at works "works", what a test gets unless it says otherwise.
RESULT_DEFAULTS: Mapping[str, Any] = {
    "site": "works",
    "scope": "direct",
    "method": "fuel_combustion",
    "activity": 0.5,
    "activity_unit": "t",
    "factor_id": "cn.coke",
    "ef_kg_per_unit": 3040.0,
    "coverage": 1.0,
    "quality": "measured",
    "flags": "",
}


def minute_result(
    minute: int = 0,
    process: str = "sinter",
    stream: str = "coke_breeze",
    co2_kg: float = 10.0,
    *,
    start: float = T0,
    **fields: Any,
) -> MinuteResult:
    """One MinuteResult: RESULT_DEFAULTS with the given fields.

    The minute starts at `start + 60 * minute` unless `minute_start` is among `fields`;
    `process`, `stream` and `co2_kg` may be given by position, as in `minute_result(3, "bf", "coke")`.
    A field MinuteResult does not have raises TypeError.
    """
    values = {**RESULT_DEFAULTS, "minute_start": start + 60.0 * minute, "process": process, "stream": stream}
    values.update(co2_kg=co2_kg, **fields)
    return MinuteResult(**values)


def minute_results(
    starts: int | Iterable[float],
    streams: Iterable[Mapping[str, Any]] = ({},),
    *,
    start: float = T0,
    **fields: Any,
) -> list[MinuteResult]:
    """One result per minute and stream, minute by minute (the order a minute's close gives).

    Args:
        starts: the minutes' start times (epoch s), or a count n for the n minutes from `start`.
        streams: each stream's own fields (process, stream, co2_kg, ...); one default stream if omitted.
        fields: fields every result shares.
    """
    if isinstance(starts, int):
        starts = [start + 60.0 * i for i in range(starts)]
    per_stream = [dict(s) for s in streams]
    return [minute_result(minute_start=float(t), **{**fields, **s}) for t in starts for s in per_stream]


def results_of(rows: Iterable[MinuteResult]) -> MinuteResults:
    """Rows as one MinuteResults (what a frame's close hands the ledger, the alerts and the views)."""
    return MinuteResults.from_rows(rows)


# ---- settings ----------------------------------------------------------------------------------


def site_settings(site: str | Mapping[str, Any] = "t", **sections: Any) -> GatewaySettings:
    """A GatewaySettings from sections of a site file as dicts, e.g. `site_settings(signals={...})`.

    `site` is the site's name, or its whole [site] section; every other section takes its defaults.
    Raises pydantic's ValidationError as GatewaySettings does.
    """
    site_section = {"name": site} if isinstance(site, str) else dict(site)
    return GatewaySettings(site=site_section, **sections)


def example(name: str) -> Path:
    """The path of a shipped example site file: example("uci-steel") is config/examples/uci-steel.toml."""
    return EXAMPLES / f"{name.removesuffix('.toml')}.toml"


def example_data(name: str) -> dict[str, Any]:
    """A shipped example site file, parsed: a fresh dict a test may change."""
    return tomllib.loads(example(name).read_text(encoding="utf-8"))


class InfluxPeer(Protocol):
    """What the gateway's [influx] section needs of a test peer (tests.services.influxd.InfluxService)."""

    url: str
    org: str
    bucket: str
    token: str


def influx_section(server: InfluxPeer, *, token: bool = True, **overrides: Any) -> dict[str, Any]:
    """The [influx] section that delivers to `server`: enabled, url, org, bucket and its token.

    token=False leaves the token out (a test that gives it in the environment); `overrides`
    add or replace keys (measurement, batch_size, timeout_s, ...).
    """
    section: dict[str, Any] = {"enabled": True, "url": server.url, "org": server.org, "bucket": server.bucket}
    if token:
        section["token"] = server.token
    section.update(overrides)
    return section


def demo_plant(
    port: int,
    ledger_path: Path,
    *,
    influx: Mapping[str, Any] | None = None,
    device: Mapping[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    """The demo plant's site file (config/examples/demo-plant.toml) as a dict, for a test's run.

    Every Modbus device polls 127.0.0.1:`port` (with `device`'s keys too, e.g. poll_s); the ledger
    is at `ledger_path` (with the keys of a `ledger` section given); `influx`, and each other section
    given, replaces the example's. Build the settings with `GatewaySettings(**data)`.
    """
    data = example_data("demo-plant")
    for dev in data["modbus"]["devices"]:
        dev.update(host="127.0.0.1", port=port, **(device or {}))
    data["ledger"] = {"path": str(ledger_path), **sections.pop("ledger", {})}
    if influx is not None:
        data["influx"] = dict(influx)
    data.update(sections)
    return data
