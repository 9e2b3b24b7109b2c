#!/usr/bin/env bash
# Builds the release binaries and runs the attack script (benches/security/attacks.py),
# which starts devicegraph-sim and devicegraph on loopback, runs every attack, prints
# the results table and writes it to benches/security/results.md.
#
#   bash benches/security/run.sh [--out PATH] [--keep-logs]
#
# Needs cargo and Python 3.11 (standard library only). Takes about 3 minutes after
# the build (two 60 s pauses let the per-key upstream budgets refill).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p devicegraph -p devicegraph-sim
exec python3 benches/security/attacks.py "$@"
