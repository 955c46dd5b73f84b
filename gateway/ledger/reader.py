"""Reading the minutes table: the current view, the history, and the sums readers total.

`LedgerReader` runs the named queries of gateway/ledger/queries.py on one connection and hands
back results, rows and numbers, never a cursor: the chain writer's connection (`Ledger.reader`),
the alerts table's (the budget after a restart), or a read-only one of its own
(`LedgerReader.open`, for `emgate ledger show` and the status page's seed while a gateway
writes). A read that fails raises LedgerError (gateway/ledger/errors.py), naming the file and
what was read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gateway.core.model import MinuteResult
from gateway.ledger import queries
from gateway.ledger.database import Connection, open_ledger_db, reading
from gateway.ledger.exports import ExportRecord, latest_export
from gateway.ledger.format import LedgerRow, ledger_row
from gateway.ledger.site import SiteRecord, site_record


class LedgerReader:
    """Read-only queries on a ledger's minutes; one connection, used from one thread at a time."""

    def __init__(self, db: Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    def open(cls, path: Path) -> LedgerReader:
        """A reader on its own read-only connection to the ledger at `path`; close() it.

        Raises LedgerError when the file is missing or cannot be read as a ledger.
        """
        return cls(open_ledger_db(path, readonly=True), path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def site_record(self) -> SiteRecord:
        """Whose ledger this is (gateway/ledger/site.py)."""
        with reading(self.path, "reading its site"):
            return site_record(self._db)

    def last_minute(self) -> float | None:
        """Start of the latest minute in the ledger, or None when it is empty."""
        with reading(self.path, "reading its last minute"):
            row = self._db.execute(queries.LAST_MINUTE).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def current_seq(self, minute_start: float, process: str, stream: str) -> int | None:
        """Seq of the current row for a minute, process and stream (for corrections)."""
        with reading(self.path, "reading a current row"):
            row = self._db.execute(queries.CURRENT_SEQ, (float(minute_start), process, stream)).fetchone()
        return int(row[0]) if row else None

    def results(self) -> Iterator[MinuteResult]:
        """The current view: every result nobody supersedes, in ledger order."""
        for _, r in self.current():
            yield r

    def current(
        self,
        *,
        from_s: float | None = None,
        to_s: float | None = None,
        process: str | None = None,
        by_minute: bool = False,
    ) -> Iterator[tuple[int, MinuteResult]]:
        """(seq, result) of the current view, minute_start in [from_s, to_s), in ledger order
        (or by minute, then ledger order, with `by_minute`)."""
        where, params = queries.time_filters(from_s, to_s, process)
        order = "m.minute_start, m.seq" if by_minute else "m.seq"
        with reading(self.path, "reading the current rows"):
            for row in self._db.execute(f"{queries.CURRENT_ROWS}{where} ORDER BY {order}", params):
                yield row[0], MinuteResult(*row[1:])

    def history(
        self, *, from_s: float | None = None, to_s: float | None = None, process: str | None = None
    ) -> Iterator[LedgerRow]:
        """Every row, superseded or not, with its chain data, in ledger order."""
        where, params = queries.time_filters(from_s, to_s, process)
        with reading(self.path, "reading the history"):
            for raw in self._db.execute(f"{queries.HISTORY_ROWS}{where} ORDER BY m.seq", params):
                yield ledger_row(raw)

    def rows_after(
        self, seq: int, limit: int, *, upto: int | None = None, current_only: bool = False
    ) -> list[tuple[int, MinuteResult]]:
        """Rows with seq in (seq, upto], oldest first; `current_only` skips superseded rows."""
        sql = queries.rows_after_sql(upto=upto is not None, current_only=current_only)
        params = (seq, upto, limit) if upto is not None else (seq, limit)
        with reading(self.path, "reading rows after a seq"):
            return [(row[0], MinuteResult(*row[1:])) for row in self._db.execute(sql, params)]

    # -- sums of the current view (queries.py, "sums of the current view") --------------------
    def co2_by_process_since(self, since_s: float) -> dict[str, float]:
        """CO2 (kg) per process of current rows with minute_start >= since_s."""
        with reading(self.path, "summing CO2 by process"):
            return {str(p): float(kg or 0.0) for p, kg in self._db.execute(queries.CO2_BY_PROCESS_SINCE, (since_s,))}

    def co2_by_process_scope_since(self, since_s: float) -> list[tuple[str, str, float]]:
        """(process, scope, CO2 kg) of current rows with minute_start >= since_s."""
        with reading(self.path, "summing CO2 by process and scope"):
            cur = self._db.execute(queries.CO2_BY_PROCESS_SCOPE_SINCE, (since_s,))
            return [(str(p), str(s), float(kg or 0.0)) for p, s, kg in cur]

    def co2_by_minute_process_after(self, after_s: float) -> list[tuple[float, str, float]]:
        """(minute_start, process, CO2 kg) of current rows with minute_start > after_s, by minute."""
        with reading(self.path, "summing CO2 by minute"):
            cur = self._db.execute(queries.CO2_BY_MINUTE_PROCESS_AFTER, (after_s,))
            return [(float(m), str(p), float(kg or 0.0)) for m, p, kg in cur]

    def co2_by_process_between(self, since_s: float, until_s: float, scopes: tuple[str, ...]) -> dict[str, float]:
        """CO2 (kg) per process of current rows with since_s <= minute_start < until_s in `scopes`."""
        with reading(self.path, "summing CO2 by process"):
            cur = self._db.execute(queries.co2_by_process_between_sql(len(scopes)), (since_s, until_s, *scopes))
            return {str(p): float(v or 0.0) for p, v in cur}

    def activity_of_stream_between(self, since_s: float, until_s: float, process: str, stream: str) -> float:
        """Sum of a stream's activity (its unit) over the range."""
        with reading(self.path, "summing a stream's activity"):
            row = self._db.execute(queries.ACTIVITY_OF_STREAM_BETWEEN, (since_s, until_s, process, stream)).fetchone()
        return float(row[0] or 0.0)

    def co2_and_production_by_minute(
        self, since_s: float, until_s: float, scopes: tuple[str, ...], production: tuple[str, str] | None
    ) -> list[tuple[float, float, float]]:
        """(minute_start, CO2 kg in scopes, production activity) per minute in the range, in order."""
        prod_p, prod_s = production if production else ("", "")
        sql = queries.co2_and_production_by_minute_sql(len(scopes))
        with reading(self.path, "summing CO2 by minute"):
            cur = self._db.execute(sql, (*scopes, prod_p, prod_s, since_s, until_s))
            return [(float(m), float(c or 0.0), float(p or 0.0)) for m, c, p in cur]

    def first_minute_between(self, since_s: float, until_s: float) -> float | None:
        """The first current minute in [since_s, until_s), or None."""
        with reading(self.path, "reading the first minute"):
            row = self._db.execute(queries.FIRST_MINUTE_BETWEEN, (since_s, until_s)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # -- the month as the deposit alert sees it ---------------------------------------------
    def factors_and_quality_between(self, since_s: float, until_s: float) -> list[tuple[str, str, str, str, str, int, float]]:
        """(process, stream, method, factor_id, quality, minute rows, activity) of the current rows
        in [since_s, until_s), one tuple per distinct (process, stream, method, factor_id, quality)."""
        with reading(self.path, "counting minutes by factor and quality"):
            cur = self._db.execute(queries.FACTORS_AND_QUALITY_BETWEEN, (since_s, until_s))
            return [(str(p), str(s), str(me), str(f), str(q), int(n), float(a or 0.0)) for p, s, me, f, q, n, a in cur]

    def last_change_between(self, since_s: float, until_s: float) -> int | None:
        """The seq of the latest row (original or correction) of a minute in [since_s, until_s), or None."""
        with reading(self.path, "reading the last change of a month"):
            row = self._db.execute(queries.LAST_CHANGE_BETWEEN, (since_s, until_s)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def latest_export(self, month: str) -> ExportRecord | None:
        """The month's last recorded export (gateway/ledger/exports.py), or None."""
        return latest_export(self._db, self.path, month)
