#!/usr/bin/env bash
# SCIM server benchmark: roster's SCIM service provider against the
# scim2-server peer (PyPI 0.8.3), 16 concurrent connections on loopback,
# bounded durations. Prints requests/s and p50/p99 latency per request
# type (filter lookup, GET by id, PATCH active, POST).
#
# Usage: scripts/scim-bench.sh [DURATION_S] [ROSTER_USERS] [PEER_USERS]
#   defaults: 10 s per request type, 100000 users in roster (seeded through
#   the store), 100000 in the peer (seeded over HTTP; in memory).
# Also runs the filter lookup with 10,000 and 1,000,000 users stored to
# show lookups do not degrade with size (set SCALE=0 to skip).
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-10}"
roster_users="${2:-100000}"
peer_users="${3:-100000}"

if [ ! -x .venv/bin/scim2-server ]; then
  bash scripts/python-tools.sh
fi
cargo build --locked --release -q -p roster-server --example scim_bench
bench="${CARGO_TARGET_DIR:-target}/release/examples/scim_bench"

echo "== roster (SQLite, ${roster_users} users)"
"$bench" roster --users "$roster_users" --duration "$duration"
echo "== scim2-server 0.8.3 (${peer_users} users)"
"$bench" peer --users "$peer_users" --duration "$duration"
if [ "${SCALE:-1}" != "0" ]; then
  for n in 10000 1000000; do
    echo "== roster filter lookups with ${n} users"
    "$bench" roster --users "$n" --duration "$duration" --only filter
  done
fi
