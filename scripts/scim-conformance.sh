#!/usr/bin/env bash
# SCIM 2.0 conformance: builds and starts roster's example SCIM server
# (SQLite in a temp dir, a token created up front, 127.0.0.1 on a free
# port), runs scim2-tester through `scim2 test` (scim2-cli 0.6.0) against
# it, and fails unless every check reports SUCCESS.
#
# Usage: scripts/scim-conformance.sh
# Installs the Python tools first if needed (scripts/python-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/scim2 ]; then
  bash scripts/python-tools.sh
fi

cargo build --locked -q -p roster-server --example scim_server
bin="${CARGO_TARGET_DIR:-target}/debug/examples/scim_server"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The server stops on SIGTERM; its stdin is kept open by a FIFO so it does
# not mistake an early EOF for its parent going away.
mkfifo "$work/stdin"
"$bin" --db "$work/roster.db" --connection conformance <"$work/stdin" >"$work/out" 2>"$work/err" &
server_pid=$!
exec 3>"$work/stdin"

for _ in $(seq 1 300); do
  grep -q '^TOKEN ' "$work/out" 2>/dev/null && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "SCIM server exited early:" >&2; cat "$work/err" >&2; exit 1
  fi
  sleep 0.1
done
url="$(sed -n 's/^LISTEN //p' "$work/out")"
token="$(sed -n 's/^TOKEN //p' "$work/out")"
if [ -z "$url" ] || [ -z "$token" ]; then
  echo "SCIM server did not start:" >&2; cat "$work/err" >&2; exit 1
fi
echo "scim2 test against $url"

set +e
SCIM_CLI_HEADERS="Authorization: Bearer $token" timeout 600 .venv/bin/scim2 --url "$url" test >"$work/result" 2>&1
rc=$?
set -e
cat "$work/result"

# Result lines start with the status; detail lines are indented.
results="$(grep -v '^[[:space:]]' "$work/result" | grep -v '^Performing' | grep -v '^$' || true)"
passed="$(printf '%s\n' "$results" | grep -c '^SUCCESS' || true)"
failed="$(printf '%s\n' "$results" | grep -vc '^SUCCESS' || true)"
[ -z "$results" ] && failed=1
echo "scim2-tester: ${passed} passed, ${failed} failed"
if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  echo "SCIM conformance FAILED (scim2 exit $rc)" >&2
  exit 1
fi
