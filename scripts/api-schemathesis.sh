#!/usr/bin/env bash
# REST API fuzzing: schemathesis (PyPI) against roster's OpenAPI document,
# served on loopback by the API over an Expensify simulator with a token of
# every scope (crates/server/tests/api_schemathesis.rs, also part of
# scripts/test.sh). Fails on any failed check.
#
# Usage: scripts/api-schemathesis.sh
# Installs the Python tools first if needed (scripts/python-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/schemathesis ]; then
  bash scripts/python-tools.sh
fi
exec cargo nextest run --locked -p roster-server --test api_schemathesis --no-capture
