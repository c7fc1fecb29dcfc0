#!/usr/bin/env bash
# Installs the Node peer of the SCIM benchmark into
# scripts/scimmy-peer/node_modules: SCIMMY (scimmy + scimmy-routers on
# Express), pinned by that directory's package.json and package-lock.json,
# from the npm registry. Nothing is downloaded at build time; only
# scripts/scim-bench.sh (and the scim_bench example's `scimmy` mode) use it.
# Idempotent: when the locked versions are installed it only checks them.
set -euo pipefail
cd "$(dirname "$0")/scimmy-peer"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed for the SCIMMY peer (Node 18 or later)" >&2
  exit 1
fi
installed() {
  node -e 'for (const p of ["scimmy", "scimmy-routers", "express"]) {
             const want = require("./package.json").dependencies[p];
             const have = require(`./node_modules/${p}/package.json`).version;
             if (have !== want) process.exit(1);
           }' 2>/dev/null
}
if ! installed; then
  # `npm ci` installs exactly the lock file.
  npm ci --no-audit --no-fund --loglevel=error
fi
installed || { echo "the SCIMMY peer's packages did not install as locked" >&2; exit 1; }
echo "node tools ready: $(node -p 'const d = require("./package.json").dependencies;
  Object.entries(d).map(([k, v]) => `${k} ${v}`).join(", ")') in $(pwd)/node_modules"
