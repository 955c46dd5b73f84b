"""The ledger's own errors: what a caller of the ledger package catches instead of sqlite3's.

SQLite's exceptions say what SQLite saw ("no such table: minutes", "database disk image is
malformed") but not which file, what the ledger was doing, or what the operator can check. The
package turns them into these at its boundary (`reading` and `writing` in
gateway/ledger/database.py), so no `sqlite3.Error` reaches a command, the pipeline or a sink:

- LedgerError: the file cannot be opened or read as a ledger (missing, not a database, a ledger
  of another schema, a damaged page, an I/O error). Commands exit 2 for it.
- LedgerFormatError (gateway/ledger/format.py): a result cannot be stored as given (NaN, a
  separator inside a text field, a wrong type); a ValueError, as it was before the package had
  errors of its own.
- LedgerSiteError (gateway/ledger/site.py) and LedgerInUseError (gateway/ledger/lock.py): the
  ledger belongs to another site, or another gateway holds it.

A write the disk refuses stays a `SinkWriteError` (gateway/core/errors.py): to the pipeline the
ledger is the first sink, and its retry and disk-failure backlog (gateway/ledger/store.py) key on
that error like every sink's.
"""

from __future__ import annotations

from pathlib import Path

from gateway.core.errors import GatewayError


class LedgerError(GatewayError):
    """A ledger file cannot be opened or read. The message says what happened, where, and what to check."""

    def __init__(
        self, path: Path, what: str, check: str = "check that the file is a ledger and that the disk is readable"
    ) -> None:
        self.path, self.what, self.check = path, what, check
        super().__init__(f"ledger {path}: {what}; {check}")

    def __reduce__(self) -> tuple[type[LedgerError], tuple[Path, str, str]]:
        # raised in the audit's worker processes too, and pickled back to the caller
        return (type(self), (self.path, self.what, self.check))
