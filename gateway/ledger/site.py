"""Whose ledger a file is: the site recorded in it, and the check every command with a site file makes.

A ledger belongs to one site: `meta` key `site` holds its `[site] name`, recorded when a
gateway, replay or restatement of that site first opens the file for writing (`claim_site`),
and every command that has a site file refuses a ledger of another site (`check_site`). A
ledger written before the site was recorded is still read: its rows name their site, so one
site in all its rows is adopted (and recorded at its next write); rows of several sites are
refused by every command that has a site. The key is not covered by the hash chain; the rows'
`site` column is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.core.errors import GatewayError
from gateway.ledger.database import Connection, open_ledger_db, reading


class LedgerSiteError(GatewayError):
    """The ledger belongs to another site, or (written before a ledger recorded its site) holds
    rows of several. Commands exit 2 with `message(site_file)`."""

    def __init__(self, path: Path, ledger_sites: tuple[str, ...], site: str) -> None:
        self.path = path
        self.ledger_sites = ledger_sites
        self.site = site
        super().__init__(self.message())

    def message(self, site_file: Path | None = None) -> str:
        """What is wrong and what to check; names the site file when the caller knows it."""
        this = f"this site file ({site_file}) is for site {self.site!r}" if site_file else f"this is site {self.site!r}"
        if len(self.ledger_sites) == 1:
            return (
                f"the ledger at {self.path} belongs to site {self.ledger_sites[0]!r}; {this}: pass that site's "
                "ledger (check --ledger, or [ledger] path in the site file)"
            )
        return (
            f"the ledger at {self.path} holds rows of several sites ({', '.join(map(repr, self.ledger_sites))}), "
            f"written before a ledger recorded its site; {this}, and a ledger belongs to one site: give the site "
            "a ledger of its own and keep this file for reading (`emgate ledger show`, `emgate ledger verify`)"
        )


@dataclass(frozen=True)
class SiteRecord:
    """Whose ledger it is: the site in `meta`, or for a ledger written before it was recorded
    there (`recorded` false), the sites its rows name. No sites: an empty ledger nobody claimed."""

    sites: tuple[str, ...]
    recorded: bool

    def describe(self) -> str:
        if not self.sites:
            return "site not recorded yet (no rows)"
        if len(self.sites) > 1:
            return f"rows of several sites: {', '.join(map(repr, self.sites))} (written before a ledger recorded its site)"
        return f"site {self.sites[0]!r}" + ("" if self.recorded else " (from its rows; recorded at its next write)")


def site_record(conn: Connection) -> SiteRecord:
    """The ledger's site (module docstring). For a ledger whose site is not in `meta`
    yet this reads every row once."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'site'").fetchone()
    if row is not None:
        return SiteRecord((str(row[0]),), True)
    return SiteRecord(tuple(sorted(str(s) for (s,) in conn.execute("SELECT DISTINCT site FROM minutes"))), False)


def check_site(conn: Connection, path: Path, site: str) -> SiteRecord:
    """The ledger's SiteRecord; raises LedgerSiteError unless it is `site`'s (or nobody's yet)."""
    record = site_record(conn)
    if record.sites and record.sites != (site,):
        raise LedgerSiteError(path, record.sites, site)
    return record


def claim_site(conn: Connection, path: Path, site: str) -> SiteRecord:
    """`check_site`, and record `site` in `meta` if it is not there yet (a new ledger, or an
    earlier version's whose rows are all this site's). Raises LedgerSiteError."""
    record = check_site(conn, path, site)
    if record.recorded:
        return record
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Under the write lock, only `meta` can have changed: another writer may have claimed
        # the ledger since (rows of another site come only after a claim). No second scan.
        row = conn.execute("SELECT value FROM meta WHERE key = 'site'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta(key, value) VALUES ('site', ?)", (site,))
        elif row[0] != site:
            raise LedgerSiteError(path, (str(row[0]),), site)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return SiteRecord((site,), True)


def read_site_record(path: Path) -> SiteRecord:
    """Whose ledger the file at `path` is, read-only (`emgate ledger verify`). Raises LedgerError
    when it cannot be read as a ledger."""
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "reading its site"):
            return site_record(db)
    finally:
        db.close()


def check_site_of(path: Path, site: str) -> SiteRecord:
    """`check_site` on the file at `path`, read-only (the export, before it reads a month).
    Raises LedgerSiteError, or LedgerError when the file cannot be read as a ledger."""
    db = open_ledger_db(path, readonly=True)
    try:
        with reading(path, "reading its site"):
            return check_site(db, path, site)
    finally:
        db.close()
