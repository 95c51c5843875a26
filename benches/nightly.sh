#!/usr/bin/env bash
# What each night adds to a repository, on the Lync-like workload: SQL Server full backups
# with ~1 % page churn and extents inserted mid-file, a config ZIP, a file-store tree.
#   benches/nightly.sh [SCALE] [NIGHTS] [GROUPING…]     (defaults: 1 5 page extent)
# Every night is presented at the same path, as on a real server, so the previous snapshot is
# the parent. Prints, per grouping and night: input bytes, bytes added, their ratio, time,
# chunks in the catalog and its size.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
scale=${1:-1}; nights=${2:-5}; shift 2 2>/dev/null || true
groupings=("$@"); [ ${#groupings[@]} -gt 0 ] || groupings=(page extent)
data="$work/nightly-s$scale"
workload "$data" "$scale" "$nights"
build_cairn
export CAIRN_PASSWORD=bench

for grouping in "${groupings[@]}"; do
  export CAIRN_REPO="$work/nightly-repo-$grouping" CAIRN_CACHE_DIR="$work/nightly-cache-$grouping"
  rm -rf "$CAIRN_REPO" "$CAIRN_CACHE_DIR"
  "$cairn" init -q --sql-page-grouping "$grouping"
  printf '\n%s grouping, scale %s (%s)\n' "$grouping" "$scale" "$(date -u +%F)"
  printf '%-6s %14s %12s %8s %8s %10s %12s\n' night input added "added%" seconds chunks catalog
  total_in=0; total_added=0
  for n in $(seq -w 1 "$nights"); do
    night="$data/night$n"; [ -d "$night" ] || night="$data/night$(printf %02d "$n")"
    mv "$night" "$data/current"
    start=$(date +%s.%N)
    summary=$("$cairn" backup --json --exclude Meeting.Active "$data/current" | tail -n 1)
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    mv "$data/current" "$night"
    read -r input added < <(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(s["bytes_read"], s["bytes_added"])' "$summary")
    input=$(find "$night" -type f ! -name Meeting.Active -printf '%s\n' | awk '{s+=$1} END {print s}')
    chunks=$(python3 - "$CAIRN_CACHE_DIR" <<'PY'
import glob, sqlite3, sys
db = glob.glob(sys.argv[1] + "/*/catalog.sqlite")[0]
print(sqlite3.connect(db).execute("select count(*) from blobs").fetchone()[0])
PY
)
    catalog=$(du -sb "$CAIRN_CACHE_DIR" | cut -f1)
    printf '%-6s %14s %12s %7.2f%% %8.1f %10s %12s\n' "$n" "$input" "$added" \
      "$(echo "100 * $added / $input" | bc -l)" "$secs" "$chunks" "$catalog"
    if [ "$n" != "01" ] && [ "$n" != "1" ]; then
      total_in=$((total_in + input)); total_added=$((total_added + added))
    fi
  done
  printf 'nights 2-%s: %.2f %% of their input added on average\n' "$nights" \
    "$(echo "100 * $total_added / $total_in" | bc -l)"
done
echo "reproduce: benches/nightly.sh $scale $nights ${groupings[*]}"
