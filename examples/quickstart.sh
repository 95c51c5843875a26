#!/usr/bin/env bash
# Builds cairn, backs up a directory into a fresh local repository, backs it up again (nothing
# is read twice), restores the latest snapshot and checks that it matches the source; then
# runs the nightly job (`cairn run`) with a plan: the directory and a command's output in one
# snapshot, retention, and a check that reads every pack.
#   examples/quickstart.sh [DIR]      (default DIR: this checkout's source folders)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$here/store}
work=$(mktemp -d "${TMPDIR:-/tmp}/cairn-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --manifest-path "$here/Cargo.toml"
cairn="$here/target/release/cairn"
export CAIRN_REPO="$work/repo" CAIRN_CACHE_DIR="$work/cache"
# A throw-away password for the demo; real use: CAIRN_PASSWORD_FILE or the prompt.
export CAIRN_PASSWORD=${CAIRN_PASSWORD:-quickstart-demo-password}

"$cairn" init
echo "== first backup of $src"
"$cairn" backup "$src"
echo "== second backup (unchanged files are not read again)"
"$cairn" backup "$src"
"$cairn" snapshots
"$cairn" restore latest --target "$work/restore"
diff -r "$src" "$work/restore/$(basename "$src")"
echo "== restored snapshot matches $src byte for byte"

echo "== the nightly job: a plan with the directory and a command's output, retention, a check"
cat > "$work/plan.toml" <<PLAN
repository = "$work/repo"
cache_dir = "$work/cache"
tags = ["nightly"]
[[source]]
path = "$src"
name = "files"
[[source]]
command = ["uname", "-srm"]
name = "exports/uname.txt"
[retention]
keep_last = 2
[check]
read_data = true
PLAN
"$cairn" run "$work/plan.toml"
"$cairn" ls latest exports
