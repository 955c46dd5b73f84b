"""The ledger: the only package that opens the SQLite file. The chain writer (store), the row
format (format), verification (audit, and the native walk _walk.c), the crash checkpoint,
restatement, the alerts table, and the lock that keeps one gateway per ledger."""
