#!/usr/bin/env bash
# The nightly plan on the Lync-like workload: what `cairn run` adds per night for the whole
# night (SQL backups + config export + file store, one snapshot), next to what the SQL backups
# add on their own in a repository of their own, and the bytes of file-store files new or
# changed since the night before.
#   benches/plan.sh [SCALE] [NIGHTS]      (defaults: 1 3)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
scale=${1:-1}; nights=${2:-3}
data="$work/nightly-s$scale"
workload "$data" "$scale" "$nights"
build_cairn
export CAIRN_PASSWORD=bench
plan_repo="$work/plan-repo" sql_repo="$work/plan-sql-repo"
rm -rf "$plan_repo" "$sql_repo" "$work/plan-cache" "$work/plan-sql-cache" "$work/plan-night"
"$cairn" -q -r "$plan_repo" --cache-dir "$work/plan-cache" init
"$cairn" -q -r "$sql_repo" --cache-dir "$work/plan-sql-cache" init
cat > "$work/plan.toml" <<PLAN
repository = "plan-repo"
cache_dir = "plan-cache"
host = "lyncbe01"
tags = ["nightly"]
profile = "lync"
[lync]
not_deployed = ["Lis", "RgsConfig", "mgc"]
[[source]]
path = "plan-night/SQL"
name = "sql"
[[source]]
path = "plan-night/Config/CsConfiguration.zip"
name = "config/CsConfiguration.zip"
[[source]]
path = "plan-night/FileStore"
name = "filestore"
[retention]
keep_daily = 14
[check]
read_data_subset = "5%"
PLAN
added() { python3 -c 'import json,sys; s=json.loads(sys.stdin.read().splitlines()[-1]); print(s["bytes_added"])'; }
printf '\nscale %s (%s)\n' "$scale" "$(date -u +%F)"
printf '%-6s %14s %12s %8s %12s %14s %8s\n' night input "run added" seconds "SQL alone" "store churn" "ratio"
for n in $(seq 1 "$nights"); do
  night="$data/night$(printf %02d "$n")"
  ln -sfn "$night" "$work/plan-night"
  input=$(find "$night" -type f ! -name Meeting.Active -printf '%s\n' | awk '{s+=$1} END {print s}')
  start=$(date +%s.%N)
  run_added=$("$cairn" --json run "$work/plan.toml" --time "2023-11-$((14 + n))T23:00:00Z" | added)
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  sql_added=$("$cairn" --json -r "$sql_repo" --cache-dir "$work/plan-sql-cache" backup "$work/plan-night/SQL" | added)
  churn=0
  if [ "$n" -gt 1 ]; then
    churn=$(python3 - "$data/night$(printf %02d $((n - 1)))/FileStore" "$night/FileStore" <<'PY'
import os, sys
before, after = sys.argv[1:]
total = 0
for root, _, files in os.walk(after):
    for f in files:
        if f == "Meeting.Active":
            continue
        p = os.path.join(root, f)
        q = os.path.join(before, os.path.relpath(p, after))
        new = open(p, "rb").read()
        if not os.path.exists(q) or open(q, "rb").read() != new:
            total += len(new)
print(total)
PY
)
  fi
  zip=$(stat -c %s "$night/Config/CsConfiguration.zip")
  printf '%-6s %14s %12s %8.1f %12s %14s %8.3f\n' "$n" "$input" "$run_added" "$secs" "$sql_added" "$churn" \
    "$(echo "$run_added / ($sql_added + $churn + $zip)" | bc -l)"
done
echo "ratio: run added / (SQL alone + file-store churn + config export); reproduce: benches/plan.sh $scale $nights"
rm -f "$work/plan-night"
