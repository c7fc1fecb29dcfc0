#!/usr/bin/env bash
# Runs roster's whole test suite: unit, data-driven, integration, the
# store suite against both SQLite and the PostgreSQL at
# $ROSTER_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test),
# and the SCIM conformance checks (scim2-tester) and peer tests
# (scim2-server), whose Python tools scripts/python-tools.sh installs into
# ./.venv first, and the real-browser tests, whose chromium and npm
# packages scripts/browser-tools.sh installs first.
#
# Set ROSTER_REQUIRE_POSTGRES=0 to let the PostgreSQL half skip (with a note)
# when no server is reachable; by default it is required (scripts/postgres.sh
# starts the local cluster when it is down), so a missing database fails the
# run instead of passing quietly. The store tests themselves fail on an
# unreachable server unless ROSTER_REQUIRE_POSTGRES=0, also under a bare
# `cargo nextest run`.
set -euo pipefail
cd "$(dirname "$0")/.."

export ROSTER_TEST_POSTGRES_URL="${ROSTER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export ROSTER_REQUIRE_POSTGRES="${ROSTER_REQUIRE_POSTGRES:-1}"

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it (cargo install cargo-nextest --locked)" >&2
  cargo install cargo-nextest --locked
fi

# The PostgreSQL half needs a server: start the local one if it is down
# (unless the PostgreSQL half is waived).
if [ "$ROSTER_REQUIRE_POSTGRES" != "0" ]; then
  ./scripts/postgres.sh
fi

# Independent SCIM peers and conformance tools (PyPI) used by the tests.
./scripts/python-tools.sh

# The real-browser tests (crates/web/tests/ui_browser.rs): Debian's
# chromium, playwright-core and axe-core (npm, pinned), when missing.
./scripts/browser-tools.sh

exec cargo nextest run --workspace --locked --no-fail-fast "$@"
