"""Named queries on the minutes table, each written once: the SQL every reader of the ledger runs.

The current view. A row is current when no row supersedes it: an original nobody corrected, or
the latest correction of its minute (gateway/ledger/store.py, "Corrections"). `is_current` is
that rule as SQL, the one definition the writer's correction check, the readers, the budget's
restart sums, the status page's seed and the month's export use; `minutes_superseded` (a
unique partial index, gateway/ledger/format.py) makes its NOT EXISTS an index probe. With
`as_of`, "current" is as of a seq bound (the export reads the month as of the head it recorded,
while the gateway goes on appending).

The statements here take positional parameters (`?`) in the order their docstrings or comments
give; the modules that own a connection execute them (LedgerReader in gateway/ledger/reader.py,
the chain writer, the alerts table). The outbox's query lives with the outbox
(gateway/ledger/outbox.py), the alerts table's with that table (gateway/ledger/alerts_table.py).
"""

from __future__ import annotations

from gateway.ledger.format import FIELDS, GENESIS_HASH, ROW_COLUMNS


def is_current(row: str = "m", *, as_of: bool = False) -> str:
    """SQL condition: the row aliased `row` is current (no row supersedes it).

    With `as_of`, no row with seq up to a bound supersedes it; the bound is one more `?`
    parameter, at this condition's place in the statement. A query using it names its
    minutes table `row` (`FROM minutes m`); the condition uses the alias `c` itself.
    """
    bound = " AND c.seq <= ?" if as_of else ""
    return f"NOT EXISTS (SELECT 1 FROM minutes c WHERE c.supersedes = {row}.seq{bound})"


CURRENT = is_current()

_FIELDS_OF_M = ", ".join("m." + f for f in FIELDS)

#: (seq, *FIELDS) of current rows: add the filters of `time_filters` and an ORDER BY.
CURRENT_ROWS = f"SELECT m.seq, {_FIELDS_OF_M} FROM minutes m WHERE {CURRENT}"
#: (seq, *FIELDS) of rows after a seq (?), optionally up to one and current only: `rows_after_sql`.
_ROWS_AFTER = f"SELECT m.seq, {_FIELDS_OF_M} FROM minutes m WHERE m.seq > ?"
#: Every row with its chain data (*ROW_COLUMNS, previous row's hash): add `time_filters` and the order.
HISTORY_ROWS = (
    f"SELECT {', '.join('m.' + c for c in ROW_COLUMNS)}, "
    f"ifnull((SELECT p.hash FROM minutes p WHERE p.seq = m.seq - 1), '{GENESIS_HASH}') "
    "FROM minutes m WHERE 1=1"
)
#: The last row: (seq, hash), or nothing in an empty ledger.
HEAD = "SELECT seq, hash FROM minutes ORDER BY seq DESC LIMIT 1"
#: The latest minute_start (NULL when empty).
LAST_MINUTE = "SELECT max(minute_start) FROM minutes"
#: The earliest and the latest minute_start of rows with seq <= ? (each ?): along `minutes_key`
#: from either end, skipping only the rows appended after the bound.
FIRST_MINUTE_UPTO = "SELECT minute_start FROM minutes WHERE seq <= ? ORDER BY minute_start LIMIT 1"
LAST_MINUTE_UPTO = "SELECT minute_start FROM minutes WHERE seq <= ? ORDER BY minute_start DESC LIMIT 1"
#: Whether a row with seq <= ? has minute_start in [?, ?).
ANY_MINUTE_UPTO_BETWEEN = "SELECT 1 FROM minutes WHERE minute_start >= ? AND minute_start < ? AND seq <= ? LIMIT 1"
#: The current row of (minute_start, process, stream): its seq.
CURRENT_SEQ = f"SELECT seq FROM minutes m WHERE minute_start = ? AND process = ? AND stream = ? AND {CURRENT}"
#: Whether an original row lies in [?, ?] of minute_start (the writer's fast path needs none).
ANY_ORIGINAL_BETWEEN = "SELECT 1 FROM minutes WHERE minute_start BETWEEN ? AND ? AND supersedes IS NULL LIMIT 1"
#: (minute_start, process, stream) of the original rows in [?, ?] (the writer's duplicate check).
ORIGINAL_KEYS_BETWEEN = (
    "SELECT minute_start, process, stream FROM minutes WHERE supersedes IS NULL AND minute_start BETWEEN ? AND ?"
)


def rows_after_sql(*, upto: bool, current_only: bool) -> str:
    """(seq, *FIELDS) of rows with seq > ? (and <= ? with `upto`), current only with
    `current_only`, oldest first, at most ? rows."""
    return (
        _ROWS_AFTER
        + (" AND m.seq <= ?" if upto else "")
        + (f" AND {CURRENT}" if current_only else "")
        + " ORDER BY m.seq LIMIT ?"
    )


def current_of_seqs_sql(count: int) -> str:
    """(seq, minute_start, process, stream, site, scope, activity_unit) of the rows among `count`
    seqs (the parameters) that exist and are current: what a correction may supersede."""
    return (
        "SELECT seq, minute_start, process, stream, site, scope, activity_unit FROM minutes m "
        f"WHERE seq IN ({','.join('?' * count)}) AND {CURRENT}"
    )


def time_filters(from_s: float | None, to_s: float | None, process: str | None) -> tuple[str, tuple[object, ...]]:
    """(" AND ..." conditions on `m`, their parameters) for minute_start in [from_s, to_s) and a process."""
    params: list[object]
    where, params = "", []
    if from_s is not None:
        where += " AND m.minute_start >= ?"
        params.append(float(from_s))
    if to_s is not None:
        where += " AND m.minute_start < ?"
        params.append(float(to_s))
    if process is not None:
        where += " AND m.process = ?"
        params.append(process)
    return where, tuple(params)


# -- sums of the current view ------------------------------------------------------------------
# The status page's seed (gateway/http/history.py) and the budget after a restart
# (gateway/alerts/budget_tracker.py) total CO2 over a range of minutes; corrections count once,
# by their current row.

#: (process, CO2 kg) of current rows with minute_start >= ?.
CO2_BY_PROCESS_SINCE = (
    f"SELECT m.process, SUM(m.co2_kg) FROM minutes m WHERE m.minute_start >= ? AND {CURRENT} GROUP BY m.process"
)
#: (process, scope, CO2 kg) of current rows with minute_start >= ?.
CO2_BY_PROCESS_SCOPE_SINCE = (
    f"SELECT m.process, m.scope, SUM(m.co2_kg) FROM minutes m WHERE m.minute_start >= ? AND {CURRENT} GROUP BY m.process, m.scope"
)
#: (minute_start, process, CO2 kg) of current rows with minute_start > ?, by minute.
CO2_BY_MINUTE_PROCESS_AFTER = (
    f"SELECT m.minute_start, m.process, SUM(m.co2_kg) FROM minutes m WHERE m.minute_start > ? AND {CURRENT} "
    "GROUP BY m.minute_start, m.process ORDER BY m.minute_start"
)
#: SUM(activity) of one stream's current rows: minute_start in [?, ?), process ?, stream ?.
ACTIVITY_OF_STREAM_BETWEEN = (
    f"SELECT SUM(m.activity) FROM minutes m WHERE {CURRENT} AND m.minute_start >= ? AND m.minute_start < ? "
    "AND m.process = ? AND m.stream = ?"
)
#: MIN(minute_start) of current rows in [?, ?).
FIRST_MINUTE_BETWEEN = f"SELECT MIN(m.minute_start) FROM minutes m WHERE {CURRENT} AND m.minute_start >= ? AND m.minute_start < ?"


def co2_by_process_between_sql(scopes: int) -> str:
    """(process, CO2 kg) of current rows: minute_start in [?, ?), scope among `scopes` parameters."""
    return (
        f"SELECT m.process, SUM(m.co2_kg) FROM minutes m WHERE {CURRENT} AND m.minute_start >= ? "
        f"AND m.minute_start < ? AND m.scope IN ({','.join('?' * scopes)}) GROUP BY m.process"
    )


def co2_and_production_by_minute_sql(scopes: int) -> str:
    """(minute_start, CO2 kg of scopes, production activity) per minute of current rows, in order.

    Parameters: `scopes` scope names, the production stream's process and stream, then the range
    [?, ?) of minute_start.
    """
    return (
        f"SELECT m.minute_start, SUM(CASE WHEN m.scope IN ({','.join('?' * scopes)}) THEN m.co2_kg ELSE 0 END), "
        "SUM(CASE WHEN m.process = ? AND m.stream = ? THEN m.activity ELSE 0 END) FROM minutes m "
        f"WHERE {CURRENT} AND m.minute_start >= ? AND m.minute_start < ? GROUP BY m.minute_start ORDER BY m.minute_start"
    )


# -- the month as the deposit alert sees it (gateway/alerts/deposit.py) --------------------------

#: (process, stream, method, factor_id, quality, minute rows, SUM(activity)) of current rows with
#: minute_start in [?, ?).
FACTORS_AND_QUALITY_BETWEEN = (
    "SELECT m.process, m.stream, m.method, m.factor_id, m.quality, COUNT(*), SUM(m.activity) FROM minutes m "
    f"WHERE m.minute_start >= ? AND m.minute_start < ? AND {CURRENT} "
    "GROUP BY m.process, m.stream, m.method, m.factor_id, m.quality"
)
#: MAX(seq) of every row, original or correction, with minute_start in [?, ?): the month's last change.
LAST_CHANGE_BETWEEN = "SELECT MAX(seq) FROM minutes WHERE minute_start >= ? AND minute_start < ?"
