#!/usr/bin/env bash
# cairn side by side with restic, borg and rustic on the Lync-like workload, in one run.
#   benches/compare.sh [SCALE] [NIGHTS]            (defaults: 1 5)
# Environment:
#   CAIRN_BENCH_DIR     scratch space (default /tmp/cairn-bench)
#   CAIRN_BENCH_TOOLS   tools to run (default: cairn, restic, borg, rustic and rustic64k, rustic
#                       with fixed 64 KiB chunks, of those installed)
#   CAIRN_BENCH_RUSTIC  1: `cargo install rustic-rs` when rustic is missing (slow: ~10 min)
# Every tool encrypts, backs up each night from the same path (so the previous snapshot is its
# parent), leaves out Meeting.Active files, and restores the last night (twice, in two rounds
# over the tools, the second in the reverse order; the faster kept). Page caches are dropped
# before each step when the script may (root). Peak RSS is from /usr/bin/time. Each restore
# is also timed with a `sync` right after it ("restore + sync"): cairn syncs before it reports
# success, the others leave their writes to the kernel.
# CAIRN_BENCH_WRAP (e.g. `perf record -g -o FILE`) runs cairn's restores under a profiler.
# restic and borg are installed from Debian's packages when missing (as root).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
scale=${1:-1}; nights=${2:-5}
data="$work/nightly-s$scale"
workload "$data" "$scale" "$nights"

missing=()
for t in restic borg; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  pkgs=(); for t in "${missing[@]}"; do [ "$t" = borg ] && pkgs+=(borgbackup) || pkgs+=("$t"); done
  (apt-get update -qq && apt-get install -y -qq "${pkgs[@]}") >/dev/null 2>&1 || true
fi
if ! command -v rustic >/dev/null && [ "${CAIRN_BENCH_RUSTIC:-}" = 1 ]; then
  cargo install --locked --quiet rustic-rs >/dev/null 2>&1 || echo "installing rustic failed" >&2
fi
default_tools="cairn"
for t in restic borg rustic; do command -v "$t" >/dev/null && default_tools+=" $t"; done
command -v rustic >/dev/null && default_tools+=" rustic64k"
read -r -a tools <<<"${CAIRN_BENCH_TOOLS:-$default_tools}"

build_cairn
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench RUSTIC_PASSWORD=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_BASE_DIR="$work/borg-home"

cache="warm"
drop() { sync; if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then cache="cold"; fi; }
# timed CMD…: runs CMD under /usr/bin/time after dropping caches; sets $secs and $rss (KiB).
timed() {
  drop
  /usr/bin/time -o "$work/time.out" -f '%e %M' "$@" >"$work/step.out" 2>"$work/step.err" || {
    echo "failed: $*" >&2; tail -n 20 "$work/step.err" >&2; exit 1; }
  read -r secs rss < <(tail -n 1 "$work/time.out")
}
size() { du -sb "$1" | cut -f1; }
night_dir() { echo "$data/night$(printf %02d "$1")"; }
current="$work/current"
bytes_of() { find "$1" -type f ! -name Meeting.Active -printf '%s\n' | awk '{s+=$1} END {print s}'; }

# Per tool: init, backup, restore (each takes the repository path; backup the night number).
init_cairn()    { "$cairn" -q -r "$1" --cache-dir "$work/cairn-cache" init; }
backup_cairn()  { timed "$cairn" -q -r "$1" --cache-dir "$work/cairn-cache" backup --exclude Meeting.Active "$current"; }
restore_cairn() { timed ${CAIRN_BENCH_WRAP:-} "$cairn" -q -r "$1" --cache-dir "$work/cairn-cache" restore latest --target "$2"; }
init_restic()    { restic -q -r "$1" init; }
backup_restic()  { timed restic -q -r "$1" backup --host bench --exclude Meeting.Active "$current"; }
restore_restic() { timed restic -q -r "$1" restore latest --target "$2"; }
init_rustic()    { rustic -r "$1" init >/dev/null 2>&1; }
backup_rustic()  { timed rustic -r "$1" backup --host bench --glob '!**/Meeting.Active' "$current"; }
restore_rustic() { timed rustic -r "$1" restore latest "$2"; }
# rustic with fixed 64 KiB chunks (page-aligned, so unchanged database pages dedup).
init_rustic64k()    { rustic -r "$1" init --set-chunker fixed_size --set-chunk-size 64KiB >/dev/null 2>&1; }
backup_rustic64k()  { backup_rustic "$@"; }
restore_rustic64k() { restore_rustic "$@"; }
init_borg()    { borg init -e repokey-blake2 "$1"; }
backup_borg()  { timed borg create --compression zstd,3 --exclude '*/Meeting.Active' "$1::night$2" "$current"; }
restore_borg() { mkdir -p "$2"; timed sh -c "cd '$2' && borg extract '$1::night$nights'"; }

# The limits on the same data: a cold `cat` of every night, `zstd -3 -T0` of night 1.
declare -A cat_secs
input_total=0
for n in $(seq 1 "$nights"); do
  timed sh -c "find '$(night_dir "$n")' -type f ! -name Meeting.Active -print0 | xargs -0 cat"
  cat_secs[$n]=$secs
done
timed sh -c "find '$(night_dir 1)' -type f ! -name Meeting.Active -print0 | xargs -0 cat | zstd -3 -T0 -c"
zstd_secs=$secs

declare -A first later added restore_mbs durable_mbs rss_backup rss_restore best
for tool in "${tools[@]}"; do
  repo="$work/cmp-$tool"
  rm -rf "$repo" "$work/restore-$tool" "$current"
  [ "$tool" = cairn ] && rm -rf "$work/cairn-cache"
  [ "$tool" = borg ] && rm -rf "$BORG_BASE_DIR"
  "init_$tool" "$repo"
  later_secs=0 later_bytes=0 later_added=0 peak=0
  for n in $(seq 1 "$nights"); do
    night=$(night_dir "$n")
    mv "$night" "$current"
    before=$(size "$repo")
    "backup_$tool" "$repo" "$n"
    mv "$current" "$night"
    grew=$(( $(size "$repo") - before ))
    input=$(bytes_of "$night")
    [ "$rss" -gt "$peak" ] && peak=$rss
    if [ "$n" = 1 ]; then
      first[$tool]=$(echo "$input / $secs / 1000000" | bc -l)
    else
      later_secs=$(echo "$later_secs + $secs" | bc -l)
      later_bytes=$((later_bytes + input)); later_added=$((later_added + grew))
    fi
    printf '%-7s night %s: %6.1f s, %12s added, %7s KiB RSS\n' "$tool" "$n" "$secs" "$grew" "$rss" >&2
  done
  rss_backup[$tool]=$peak
  if [ "$nights" -gt 1 ]; then
    later[$tool]=$(echo "$later_bytes / $later_secs / 1000000" | bc -l)
    added[$tool]=$(echo "100 * $later_added / $later_bytes" | bc -l)
  fi
done

# Restore the last night twice with every tool, each time into an empty directory, and keep
# each tool's faster restore: on this kind of virtual machine the same restore varies by a
# third from one run to the next, and the first restore after the backups was the slow one,
# whichever the tool. The second round runs the tools in the reverse order, so that no tool
# always restores first. The last restore of each tool is checked byte for byte (untimed).
last=$(night_dir "$nights")
mv "$last" "$current"
bytes=$(bytes_of "$current")
reversed=(); for ((i = ${#tools[@]} - 1; i >= 0; i--)); do reversed+=("${tools[i]}"); done
for attempt in 1 2; do
  if [ "$attempt" = 1 ]; then order=("${tools[@]}"); else order=("${reversed[@]}"); fi
  for tool in "${order[@]}"; do
    rm -rf "$work/restore-$tool"
    "restore_$tool" "$work/cmp-$tool" "$work/restore-$tool"
    # Until the restored files are on the disk: cairn syncs before it reports success, the
    # others leave the writing to the kernel, after they exit. `sync` right after counts it.
    start=$(date +%s.%N); sync; synced=$(echo "$(date +%s.%N) - $start" | bc -l)
    printf '%-7s restore %s: %6.1f s, %4.1f s more to sync, %7s KiB RSS\n' "$tool" "$attempt" "$secs" "$synced" "$rss" >&2
    if [ -z "${best[$tool]:-}" ] || [ "$(echo "$secs < ${best[$tool]}" | bc -l)" = 1 ]; then
      best[$tool]=$secs
      rss_restore[$tool]=$rss
      restore_mbs[$tool]=$(echo "$bytes / $secs / 1000000" | bc -l)
      durable_mbs[$tool]=$(echo "$bytes / ($secs + $synced) / 1000000" | bc -l)
    fi
    if [ "$attempt" = 2 ]; then
      restored=$(find "$work/restore-$tool" -type d -name current -print -quit)
      diff -r --exclude Meeting.Active "$current" "$restored" >/dev/null ||
        { echo "$tool: the restored night differs from the original" >&2; mv "$current" "$last"; exit 1; }
    fi
    rm -rf "$work/restore-$tool"
  done
done
mv "$current" "$last"

later_cat_bytes=0 later_cat_secs=0
for n in $(seq 2 "$nights"); do
  later_cat_bytes=$((later_cat_bytes + $(bytes_of "$(night_dir "$n")")))
  later_cat_secs=$(echo "$later_cat_secs + ${cat_secs[$n]}" | bc -l)
done
night1=$(bytes_of "$(night_dir 1)")
printf '\n%s nights at scale %s, %s cache, %s, %s\n' "$nights" "$scale" "$cache" "$(uname -m) $(nproc) cores" "$(date -u +%F)"
printf '| tool | night 1 MB/s | nights 2–%s MB/s | added per night | restore MB/s | restore + sync MB/s | peak RSS backup | peak RSS restore |\n|---|---:|---:|---:|---:|---:|---:|---:|\n' "$nights"
for tool in "${tools[@]}"; do
  printf '| %s | %.0f | %.0f | %.2f %% | %.0f | %.0f | %d MiB | %d MiB |\n' "$tool" "${first[$tool]}" "${later[$tool]:-0}" \
    "${added[$tool]:-0}" "${restore_mbs[$tool]}" "${durable_mbs[$tool]}" $((rss_backup[$tool] / 1024)) $((rss_restore[$tool] / 1024))
done
printf '| limits | cat %.0f, zstd -3 -T0 %.0f | cat %.0f | | | | | |\n' \
  "$(echo "$night1 / ${cat_secs[1]} / 1000000" | bc -l)" "$(echo "$night1 / $zstd_secs / 1000000" | bc -l)" \
  "$(echo "$later_cat_bytes / $later_cat_secs / 1000000" | bc -l)"
echo
echo "cairn against each (throughput ratios: higher is better; added: lower is better):"
for tool in "${tools[@]}"; do
  [ "$tool" = cairn ] && continue
  printf '  vs %-7s night 1 %.2fx, nights 2-%s %.2fx, restore %.2fx (+ sync %.2fx), added %.2fx\n' "$tool" \
    "$(echo "${first[cairn]} / ${first[$tool]}" | bc -l)" "$nights" \
    "$(echo "${later[cairn]:-0} / ${later[$tool]:-1}" | bc -l)" \
    "$(echo "${restore_mbs[cairn]} / ${restore_mbs[$tool]}" | bc -l)" \
    "$(echo "${durable_mbs[cairn]} / ${durable_mbs[$tool]}" | bc -l)" \
    "$(echo "${added[cairn]:-0} / ${added[$tool]:-1}" | bc -l)"
done
printf '  vs cold cat: nights 2-%s %.2f of its throughput\n' "$nights" \
  "$(echo "${later[cairn]:-0} / ($later_cat_bytes / $later_cat_secs / 1000000)" | bc -l)"
echo "reproduce: CAIRN_BENCH_TOOLS=\"${tools[*]}\" benches/compare.sh $scale $nights"
