"""Parse Flux's annotated CSV with the csv module, independently of influxdb-client.

A response holds one or more tables. Each starts with annotation rows (`#datatype`, `#group`,
`#default`), then a header row, then data rows; a blank line ends a table. The first column is
reserved for annotations and is empty on header and data rows.
"""

import csv
import io
from collections.abc import Callable


class FluxError(RuntimeError):
    """The query failed; the server reported it inside the CSV stream."""


def _bool(text: str) -> bool:
    return text == "true"


_CONVERTERS: dict[str, Callable[[str], object]] = {
    "long": int,
    "unsignedLong": int,
    "double": float,
    "boolean": _bool,
}


def _convert(value: str, datatype: str | None, default: str | None) -> object:
    if value == "":
        if not default:
            return None
        value = default
    convert = _CONVERTERS.get(datatype or "")
    # dateTime:RFC3339, string and duration stay text: tests compare them as the server wrote them.
    return convert(value) if convert is not None else value


def parse_annotated_csv(text: str) -> list[dict[str, object]]:
    """Rows of every table as dicts keyed by column name (result, table, _time, _value, ...).

    Values are converted by their `#datatype` annotation: long/unsignedLong -> int,
    double -> float, boolean -> bool; everything else stays a str. Empty cells take the
    `#default` annotation, or None. Raises FluxError if the stream carries an error table.
    """
    rows: list[dict[str, object]] = []
    datatypes: list[str] | None = None
    defaults: list[str] | None = None
    header: list[str] | None = None
    for record in csv.reader(io.StringIO(text)):
        if not record or all(cell == "" for cell in record):
            datatypes = defaults = header = None  # a blank line ends the table
            continue
        if record[0] == "#datatype":
            datatypes, header = record, None
            continue
        if record[0] == "#default":
            defaults = record
            continue
        if record[0].startswith("#"):
            continue  # #group: not needed to read values
        if header is None:
            header = record
            continue
        row = {
            name: _convert(
                record[i],
                datatypes[i] if datatypes else None,
                defaults[i] if defaults else None,
            )
            for i, name in enumerate(header)
            if i > 0 and i < len(record)
        }
        if "error" in header and row.get("error"):
            raise FluxError(f"flux query failed: {row['error']} (reference {row.get('reference')})")
        rows.append(row)
    return rows
