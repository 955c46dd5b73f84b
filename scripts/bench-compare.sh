#!/usr/bin/env bash
# Old and new side by side: `scripts/bench-compare.sh REV [AREA...]` runs `python -m bench
# --quick --only AREA` on a worktree of REV and on this checkout, one after the other for each
# area (so both sides meet the same machine load), then prints every figure old | new.
# REV's native ledger walk is compiled in its worktree with gcc (SQLite's and OpenSSL's
# headers, which `make services` installs). Output: bench/results/compare-REV/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rev=${1:?usage: scripts/bench-compare.sh REV [AREA...]}
shift
py=${PY:-.venv/bin/python}
new=$(pwd)
out=bench/results/compare-$rev
old=$(mktemp -d)/old
mkdir -p "$out"
git worktree add -q --detach "$old" "$rev"
trap 'git worktree remove --force "$old"' EXIT
include=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
suffix=$("$py" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
walk=$(cd "$old" && git ls-files '*_walk.c' | head -n 1)
if [ -n "$walk" ]; then
    gcc -O2 -std=c11 -shared -fPIC -I"$include" "$old/$walk" -o "$old/${walk%.c}$suffix" -lsqlite3 -lcrypto
fi
areas=("$@")
[ ${#areas[@]} -gt 0 ] || mapfile -t areas < <("$py" -c "import bench.__main__ as b; print('\n'.join(b.AREAS))")
for area in "${areas[@]}"; do
    for side in old new; do
        dir=$old; [ "$side" = new ] && dir=$new
        echo "== $area ($side)"
        (cd "$dir" && PYTHONPATH="$dir" "$new/$py" -m bench --quick --only "$area" --json "$new/$out/$side-$area.json" \
            > "$new/$out/$side-$area.log" 2>&1) || echo "   failed: see $out/$side-$area.log"
    done
done
"$py" - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows: dict[tuple[str, str], dict[str, object]] = {}
for f in sorted(out.glob("*.json")):
    side, area = f.stem.split("-", 1)
    doc = json.loads(f.read_text())
    for key, value in doc.get("figures", doc).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.setdefault((area, key), {})[side] = value
print(f"{'area':18} {'figure':46} {'old':>14} {'new':>14}")
for (area, key), v in sorted(rows.items()):
    print(f"{area:18} {key:46} {v.get('old', '-')!s:>14.14} {v.get('new', '-')!s:>14.14}")
PY
