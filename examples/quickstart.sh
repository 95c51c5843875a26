#!/usr/bin/env bash
# Builds cairn, backs up a directory into a fresh local repository, backs it up again (nothing
# is read twice), restores the latest snapshot and checks that it matches the source.
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
