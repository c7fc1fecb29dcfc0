#!/usr/bin/env bash
# Installs the Python tools roster's tests use as independent peers into
# ./.venv: scim2-server (a SCIM 2.0 server the SCIM connector is tested
# against). Idempotent: when the pinned versions are already installed it
# only checks them and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

SCIM2_SERVER_VERSION="0.8.3"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi

installed="$(.venv/bin/python -m pip show scim2-server 2>/dev/null | sed -n 's/^Version: //p' || true)"
if [ "$installed" != "$SCIM2_SERVER_VERSION" ]; then
  .venv/bin/pip install -q "scim2-server==${SCIM2_SERVER_VERSION}"
fi

if [ ! -x .venv/bin/scim2-server ]; then
  echo "scim2-server was installed but .venv/bin/scim2-server is missing" >&2
  exit 1
fi
echo "python tools ready: scim2-server ${SCIM2_SERVER_VERSION} in $(pwd)/.venv"
