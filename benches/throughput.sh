#!/usr/bin/env bash
# Backup and restore throughput of cairn on a ~1 GB tree, next to `cat`, `b3sum` and
# `zstd -3 -T0` on the same files in the same run (ratios, since these machines are noisy).
#   benches/throughput.sh [DIR]
# Without DIR, night 1 of the Lync-like workload at scale 0.65 (~1.06 GB) is generated.
# Page caches are dropped before each step when the script may (root); otherwise every step
# reads from a warm cache and the table says so.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${CAIRN_BENCH_DIR:-/tmp/cairn-bench}
mkdir -p "$work"
src=${1:-}
if [ -z "$src" ]; then
  gen=$(cd "$here/../shared/workload" 2>/dev/null && pwd)/gen_workload.py
  [ -f "$gen" ] || { echo "give a DIR, or provide ../shared/workload/gen_workload.py" >&2; exit 2; }
  python3 "$gen" --out "$work/data-s0.65" --scale 0.65 --nights 1 >/dev/null
  src="$work/data-s0.65/night01"
fi
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
cairn="$here/target/release/cairn"
command -v b3sum >/dev/null || cargo install --quiet --locked b3sum >/dev/null 2>&1 || true

bytes=$(find "$src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
cache="warm"
drop() { sync; if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then cache="cold"; fi; }
# step NAME CMD…: runs CMD under /usr/bin/time, prints seconds, MB/s and peak RSS.
results=()
step() {
  local name=$1; shift
  drop
  /usr/bin/time -o "$work/time.out" -f '%e %M' "$@" >/dev/null 2>"$work/step.err" ||
    { echo "$name failed:" >&2; cat "$work/step.err" >&2; exit 1; }
  local out secs rss
  out=$(tail -n 1 "$work/time.out")
  secs=${out% *} rss=${out#* }
  results+=("$name|$secs|$rss")
}
files() { find "$src" -type f -print0; }
export CAIRN_REPO="$work/repo" CAIRN_CACHE_DIR="$work/cache" CAIRN_PASSWORD=bench
rm -rf "$work/repo" "$work/cache" "$work/restore"
# CAIRN_BENCH_INSECURE=1 measures an unencrypted repository (for the encryption's cost).
if [ -n "${CAIRN_BENCH_INSECURE:-}" ]; then mode=unencrypted; "$cairn" init -q --insecure-no-encryption
else mode=encrypted; "$cairn" init -q; fi

step "cat"               sh -c "find '$src' -type f -print0 | xargs -0 cat"
command -v b3sum >/dev/null && step "b3sum"  sh -c "find '$src' -type f -print0 | xargs -0 b3sum --num-threads 2"
step "zstd -3 -T0"       sh -c "find '$src' -type f -print0 | xargs -0 cat | zstd -3 -T0 -c"
step "cairn backup (first)"              "$cairn" backup -q "$src"
step "cairn backup (unchanged)"          "$cairn" backup -q "$src"
find "$src" -type f -exec touch {} +
step "cairn backup (all re-read, dedup)" "$cairn" backup -q "$src"
step "cairn restore"                     "$cairn" restore -q latest --target "$work/restore"
diff -r "$src" "$work/restore/$(basename "$src")" >/dev/null && verified=yes || verified=NO
repo_bytes=$(du -sb "$work/repo" | cut -f1)
# Opening the repository: key unwrap (Argon2id when encrypted) + catalog check, best of 3.
open_secs=$(for _ in 1 2 3; do /usr/bin/time -f '%e' "$cairn" snapshots -q 2>&1 >/dev/null | tail -n 1; done | sort -n | head -n 1)

cat_secs=$(echo "${results[0]}" | cut -d'|' -f2)
printf '\n%s, %s repository, %s cache, %s bytes in %s files; %s %s\n' "$(date -u +%F)" "$mode" "$cache" "$bytes" \
  "$(find "$src" -type f | wc -l)" "$(nproc) cores" "$(uname -m)"
printf '%-36s %8s %10s %10s %12s\n' step seconds "MB/s" "x cat" "peak RSS"
for r in "${results[@]}"; do
  IFS='|' read -r name secs rss <<<"$r"
  awk -v n="$name" -v s="$secs" -v r="$rss" -v b="$bytes" -v c="$cat_secs" 'BEGIN {
    mbs = (s > 0) ? b / s / 1e6 : 0; ratio = (s > 0) ? c / s : 0;
    printf "%-36s %8.2f %10.0f %10.2f %9.0f MiB\n", n, s, mbs, ratio, r / 1024 }'
done
printf 'repository: %s bytes (%.1f %% of input); restore identical: %s\n' "$repo_bytes" \
  "$(awk -v a="$repo_bytes" -v b="$bytes" 'BEGIN {print 100 * a / b}')" "$verified"
echo "open latency (cairn snapshots): ${open_secs} s"
echo "reproduce: ${CAIRN_BENCH_INSECURE:+CAIRN_BENCH_INSECURE=1 }benches/throughput.sh ${1:-}"
