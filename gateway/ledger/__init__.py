"""The ledger: the only package that opens the SQLite file (and the only one importing sqlite3).

- format.py      the one definition of a row: schema, column layout, canonical encoding, chain
- database.py    the one connection setup for the file, and sqlite3's errors turned into ours
- errors.py      LedgerError, what a caller catches instead of sqlite3.Error
- site.py        whose ledger a file is, and the check every command with a site file makes
- lock.py        one gateway per ledger
- store.py       Ledger: the open file and its chain writer (append, corrections, bulk load)
- checkpoint_table.py, outbox.py, reader.py   the parts a Ledger builds on its connection: the
                 window's saved state, delivery cursors and quarantine, the current view and sums
- queries.py     the named queries on the minutes table (the current view, sums), written once
- alerts_table.py  the alert events table (event log and MQTT outbox)
- evidence.py    evidence records (lab results), their own chain, the report copies beside the file
- checkpoint.py  the minute window's checkpoint encoding and the recovery at startup
- restate.py     corrections from the factors a site file (and the ledger's lab evidence) resolves now
- audit.py       walking the hash chain (and _walk.c, the native walk, with _walk_layout.h
                 generated from format.py by scripts/gen_walk_layout.py)
- month.py       a month's cells for the export, read as of a pinned head
- archive.py     month seals and archive files (`emgate ledger archive`)
- month_cells.py the cells of the months an archive holds whole, stored in it when it is written
- period.py      a period's cells across the live ledger and its archives (the CBAM year)
"""
