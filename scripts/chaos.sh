#!/usr/bin/env bash
# The chaos suite's long form: crates/engine/tests/chaos.rs at a larger
# scale (more actions, more SIGKILLs, more fault bursts) against the
# PostgreSQL at $ROSTER_TEST_POSTGRES_URL, on loopback only. Prints the
# figures line of each round.
#
#   scripts/chaos.sh [SCALE] [ROUNDS]     # defaults: 5 and 3
#
# Each round is the proxied run (database outages: every connection cut,
# new ones refused) and then the same run on a private PostgreSQL cluster
# that is restarted for real (pg_ctl restart -m immediate / -m fast; skipped
# with a message where the server binaries are missing). The short form
# (scale 1, with the proxied outages) runs in the normal test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-5}"; rounds="${2:-3}"
export ROSTER_TEST_POSTGRES_URL="${ROSTER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export ROSTER_REQUIRE_POSTGRES=1
# The database outages through the proxy (chaos.rs); =0 leaves them out.
export ROSTER_CHAOS_OUTAGES="${ROSTER_CHAOS_OUTAGES:-1}"
./scripts/postgres.sh
cargo build -p roster-engine --tests --locked -q
for r in $(seq 1 "$rounds"); do
  echo "== round $r of $rounds (scale $scale)" >&2
  ROSTER_CHAOS_SCALE="$scale" cargo test -p roster-engine --locked -q --test chaos chaos_short -- --exact --nocapture 2>&1 \
    | grep -E '^chaos figures|panicked|FAILED|test result'
  ROSTER_CHAOS_SCALE="$scale" cargo test -p roster-engine --locked -q --test chaos chaos_server_restart -- --exact --ignored --nocapture 2>&1 \
    | grep -E '^chaos figures|^SKIP|panicked|FAILED|test result'
done
