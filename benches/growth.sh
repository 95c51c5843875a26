#!/usr/bin/env bash
# Memory and speed as a repository grows: cairn backs up NIGHTS nights of the Lync-like
# workload into one repository and prints, per night, the time, the peak RSS, the bytes added
# and the catalog's size. Peak RSS must stay flat: look-ups go to SQLite, not to memory.
#   benches/growth.sh [SCALE] [NIGHTS]      (defaults: 0.3 20)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
scale=${1:-0.3}; nights=${2:-20}
data="$work/growth-s$scale"
workload "$data" "$scale" "$nights"
build_cairn
export CAIRN_PASSWORD=bench CAIRN_REPO="$work/growth-repo" CAIRN_CACHE_DIR="$work/growth-cache"
rm -rf "$CAIRN_REPO" "$CAIRN_CACHE_DIR" "$work/growth-current"
"$cairn" -q init
printf '\nscale %s, %s nights (%s)\n%-6s %8s %10s %14s %12s\n' "$scale" "$nights" "$(date -u +%F)" \
  night seconds "RSS KiB" added "catalog"
for n in $(seq 1 "$nights"); do
  night="$data/night$(printf %02d "$n")"
  mv "$night" "$work/growth-current"
  /usr/bin/time -o "$work/growth.time" -f '%e %M' "$cairn" --json backup --exclude Meeting.Active \
    "$work/growth-current" > "$work/growth.out"
  mv "$work/growth-current" "$night"
  read -r secs rss < "$work/growth.time"
  added=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["bytes_added"])' "$work/growth.out")
  printf '%-6s %8s %10s %14s %12s\n' "$n" "$secs" "$rss" "$added" "$(du -sb "$CAIRN_CACHE_DIR" | cut -f1)"
done
echo "reproduce: benches/growth.sh $scale $nights"
