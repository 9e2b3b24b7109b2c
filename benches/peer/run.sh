#!/usr/bin/env bash
# devicegraph against a peer gateway (Hive Gateway + GraphQL Mesh over the
# simulator's OpenAPI description), one simulator, one run: issue 9, case 6.
#
#   bash benches/peer/run.sh [--devicegraph BIN] [--sim BIN] [--seconds S] [--slices N]
#       [other benches/peer/peer.py options, e.g. --peer-fork 2]
#
# Installs the peer's pinned packages (`npm ci` in benches/peer), then runs
# benches/peer/peer.py, which starts devicegraph-sim, devicegraph (thingspace mode)
# and the peer, checks them, measures both and prints the tables. The binaries
# default to target/release/devicegraph and target/release/devicegraph-sim
# (`cargo build --release -p devicegraph -p devicegraph-sim --bins`; this script
# builds nothing). Needs Node 20+, npm, wrk (Debian package `wrk`) and Python 3.11.
# About 3 minutes with the defaults, after the install.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in node npm wrk python3; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 2; }
done
(cd benches/peer && npm ci --no-audit --no-fund --loglevel=error)
exec python3 benches/peer/peer.py "$@"
