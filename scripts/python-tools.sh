#!/usr/bin/env bash
# Installs the Python tools roster's tests use as independent peers into
# ./.venv: scim2-server (a SCIM 2.0 server the SCIM connector is tested
# against and the SCIM server is benchmarked against) and scim2-cli (whose
# `scim2 test` runs the scim2-tester conformance checks against roster's
# SCIM server), and schemathesis (which fuzzes the REST API from its
# OpenAPI document, crates/server/tests/api_schemathesis.rs). Idempotent: when the pinned versions are already installed
# it only checks them and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

SCIM2_SERVER_VERSION="0.8.3"
SCIM2_CLI_VERSION="0.6.0"
SCHEMATHESIS_VERSION="4.32.5"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi

version_of() {
  .venv/bin/python -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p' || true
}
if [ "$(version_of scim2-server)" != "$SCIM2_SERVER_VERSION" ] ||
   [ "$(version_of scim2-cli)" != "$SCIM2_CLI_VERSION" ] ||
   [ "$(version_of schemathesis)" != "$SCHEMATHESIS_VERSION" ]; then
  .venv/bin/pip install -q "scim2-server==${SCIM2_SERVER_VERSION}" "scim2-cli==${SCIM2_CLI_VERSION}" \
    "schemathesis==${SCHEMATHESIS_VERSION}"
fi

if [ ! -x .venv/bin/scim2-server ]; then
  echo "scim2-server was installed but .venv/bin/scim2-server is missing" >&2
  exit 1
fi
if [ ! -x .venv/bin/scim2 ]; then
  echo "scim2-cli was installed but .venv/bin/scim2 is missing" >&2
  exit 1
fi
if [ ! -x .venv/bin/schemathesis ]; then
  echo "schemathesis was installed but .venv/bin/schemathesis is missing" >&2
  exit 1
fi
echo "python tools ready: scim2-server ${SCIM2_SERVER_VERSION}, scim2-cli ${SCIM2_CLI_VERSION}, schemathesis ${SCHEMATHESIS_VERSION} in $(pwd)/.venv"
