#!/usr/bin/env bash
# A ledger written by an earlier release's own code, kept as a test fixture (tests/fixtures/ledgers).
#
#   scripts/make-ledger-fixture.sh REV NAME      e.g. scripts/make-ledger-fixture.sh c64d46a release-1
#
# Checks out REV in a temporary worktree and, with that code (this checkout's .venv for the
# libraries), replays tests/fixtures/ledgers/input.csv through site.toml into a ledger, imports
# lab.csv where REV has `emgate lab import`, exports 2026-11 and verifies the ledger. It keeps
# NAME/ledger.sqlite (with NAME/ledger.sqlite.evidence/ when there is one) and NAME/expected.json:
# what REV itself said of its ledger (schema, rows, head hash, the export's totals).
# tests/integration/test_ledger_upgrade.py opens each fixture with the current code.
set -euo pipefail
rev=${1:?usage: $0 REV NAME}
name=${2:?usage: $0 REV NAME}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fx="$root/tests/fixtures/ledgers"
py="$root/.venv/bin/python"
tmp=$(mktemp -d)
git -C "$root" worktree add --detach -q "$tmp/code" "$rev"
trap 'git -C "$root" worktree remove --force "$tmp/code"; rm -rf "$tmp"' EXIT
old() { (cd "$tmp" && PYTHONPATH="$tmp/code" EMGATE_DATA_DIR="$tmp/no-data" "$py" -m gateway "$@"); }

old replay --config "$fx/site.toml" --input "$fx/input.csv" --out "$tmp/replay" >/dev/null
ledger="$tmp/replay/ledger.sqlite"
if old lab --help >/dev/null 2>&1; then
    old lab import --config "$fx/site.toml" --ledger "$ledger" "$fx/lab.csv" >/dev/null
fi
old export --config "$fx/site.toml" --ledger "$ledger" --month 2026-11 --out "$tmp/export" >/dev/null
old ledger verify "$ledger" > "$tmp/verify.txt"

rm -rf "${fx:?}/$name"
mkdir -p "$fx/$name"
"$py" - "$ledger" "$fx/$name/ledger.sqlite" <<'PY'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
src.backup(dst)  # one file, as the release left it (its WAL folded in)
dst.execute("PRAGMA journal_mode=DELETE")
PY
[ -d "$ledger.evidence" ] && cp -r "$ledger.evidence" "$fx/$name/ledger.sqlite.evidence"
"$py" - "$rev" "$(git -C "$root" rev-parse "$rev")" "$fx/$name" "$tmp" <<'PY'
import json, sqlite3, sys
from pathlib import Path
rev, commit, out, tmp = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
db = sqlite3.connect(out / "ledger.sqlite")
summary = json.loads((tmp / "export" / "summary.json").read_text())
expected = {
    "rev": rev,
    "commit": commit,
    "schema": db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0],
    "rows": db.execute("SELECT count(*) FROM minutes").fetchone()[0],
    "corrections": db.execute("SELECT count(*) FROM minutes WHERE supersedes IS NOT NULL").fetchone()[0],
    "verify": (tmp / "verify.txt").read_text().splitlines()[0],
    "export": {
        "month": summary["month"],
        "direct_co2_t": summary["scopes"]["direct"]["co2_t"],
        "indirect_co2_t": summary["scopes"]["indirect"]["co2_t"],
        "head_seq": summary["ledger"]["head_seq"],
        "head_hash": summary["ledger"]["head_hash"],
    },
}
(out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
print(f"{out}: schema {expected['schema']}, {expected['rows']} rows, direct {expected['export']['direct_co2_t']} t")
PY
