"""The monthly registry export (`emgate export`): one path from the ledger's month to its files.

monthly.py runs the phases (read, aggregate, tables, workbook, chart, write); the month is read
through the ledger package (gateway/ledger/month.py). tables.py aggregates (pure), documents.py
and manifest.py say what the files hold (times.py how they write instants), workbook.py and
chart.py render them, and context.py takes what the site configuration adds. See docs/export.md.
"""
