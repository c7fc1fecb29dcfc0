#!/usr/bin/env bash
# How the drain rate grows with worker processes: 1 and 4 `run_worker`
# processes drain the same queue (the chaos suite's plan, no faults)
# against the Expensify simulator on loopback, on the PostgreSQL at
# $ROSTER_TEST_POSTGRES_URL. Three runs each; prints the medians and the
# ratio. The simulator's latency is the connector's 40 ms linger per batch
# of 10, and its rate windows are widened (ROSTER_CHAOS_RATE_SCALE) so the
# app's documented limit is not what bounds the rate.
#
#   scripts/bench-workers.sh [CREATES] [WORKERS]     # defaults: 2000 and 4
set -euo pipefail
cd "$(dirname "$0")/.."
creates="${1:-2000}"; many="${2:-4}"
export ROSTER_TEST_POSTGRES_URL="${ROSTER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export ROSTER_REQUIRE_POSTGRES=1 ROSTER_DRAIN_CREATES="$creates" ROSTER_CHAOS_RATE_SCALE="${ROSTER_CHAOS_RATE_SCALE:-0.0005}"
./scripts/postgres.sh
cargo build -p roster-engine --tests --locked -q
rate() {
  ROSTER_DRAIN_WORKERS="$1" cargo test -p roster-engine --locked -q --test chaos drain_bench -- --ignored --exact --nocapture 2>&1 \
    | sed -n 's/^drain figures: .*, \([0-9]*\) actions\/s$/\1/p'
}
median() { sort -n | sed -n 2p; }
one="$(for _ in 1 2 3; do rate 1; done | tee /dev/stderr | median)"
four="$(for _ in 1 2 3; do rate "$many"; done | tee /dev/stderr | median)"
echo "1 worker: median $one actions/s; $many workers: median $four actions/s; ratio $(python3 -c "print(round($four/$one, 2))")"
