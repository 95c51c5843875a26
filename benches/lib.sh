# Sourced by the benchmark scripts: `here` (the checkout), `work` (scratch space,
# CAIRN_BENCH_DIR), and two steps they all take.

here=$(cd "$(dirname "${BASH_SOURCE[1]}")/.." && pwd)
work=${CAIRN_BENCH_DIR:-/tmp/cairn-bench}
mkdir -p "$work"

# workload OUT SCALE NIGHTS: the Lync-like workload's nights in OUT (kept when already there).
workload() {
  python3 "$(cd "$here/../shared/workload" && pwd)/gen_workload.py" \
    --out "$1" --scale "$2" --nights "$3" >/dev/null
}

# build_cairn: a release build; sets `cairn` to the binary.
build_cairn() {
  cargo build --release --quiet --manifest-path "$here/Cargo.toml"
  cairn="$here/target/release/cairn"
}
