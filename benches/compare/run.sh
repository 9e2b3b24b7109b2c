#!/usr/bin/env bash
# Builds this checkout and an earlier revision in release mode and compares them in
# one run (benches/compare/compare.py: warm path with wrk, upstream calls counted at
# the simulator).
#
#   bash benches/compare/run.sh BASE_REV [compare.py options, e.g. --slices 8]
#
# Needs cargo, git, wrk (Debian package `wrk`) and Python 3.11. Builds share this
# checkout's target directory (the base first; each binary is copied out before the
# next build). About 5 minutes after the builds with the defaults.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -lt 1 ]; then
  echo "usage: bash benches/compare/run.sh BASE_REV [compare.py options]" >&2
  exit 2
fi
rev=$1
shift
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add --detach "$work/base" "$rev" >/dev/null
(cd "$work/base" && cargo build --release -p devicegraph --bin devicegraph)
cp "$CARGO_TARGET_DIR/release/devicegraph" "$work/devicegraph-base"
cargo build --release -p devicegraph -p devicegraph-sim --bins --example bare_server
cp "$CARGO_TARGET_DIR/release/devicegraph" "$work/devicegraph-new"
cp "$CARGO_TARGET_DIR/release/devicegraph-sim" "$work/devicegraph-sim"
cp "$CARGO_TARGET_DIR/release/examples/bare_server" "$work/bare_server"
python3 benches/compare/compare.py --base "$work/devicegraph-base" \
  --new "$work/devicegraph-new" --sim "$work/devicegraph-sim" \
  --bare "$work/bare_server" "$@"
