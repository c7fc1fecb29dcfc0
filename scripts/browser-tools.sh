#!/usr/bin/env bash
# Installs what roster's real-browser tests (tests/browser/*.mjs, run by
# crates/web/tests/ui_browser.rs) need, when it is missing:
#
# * Debian's chromium and chromium-driver (apt; as root), when
#   /usr/bin/chromium or /usr/bin/chromedriver is absent. Playwright drives this browser: no
#   browser is ever downloaded by Playwright itself (never run
#   `npx playwright install`).
# * playwright-core and axe-core from the npm registry, pinned in
#   tests/browser/package-lock.json, into tests/browser/node_modules
#   (`npm ci`), when they are missing or not the pinned versions.
#
# Idempotent: with everything in place it only checks and exits. Set
# ROSTER_SKIP_BROWSER_TOOLS=1 to skip it (the browser tests then fail
# with a message naming this script).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${ROSTER_SKIP_BROWSER_TOOLS:-0}" = "1" ]; then
  exit 0
fi

CHROMIUM=/usr/bin/chromium
# chromedriver: the W3C WebDriver server roster's browser runbooks drive
# (crates/engine/src/browser), spawned by roster itself on loopback.
CHROMEDRIVER=/usr/bin/chromedriver
if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "browser-tools: $CHROMIUM or $CHROMEDRIVER is missing; as root run: apt-get update && apt-get install -y chromium chromium-driver" >&2
    exit 1
  fi
  echo "browser-tools: installing Debian's chromium and chromium-driver (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" != "0" ]; then
    echo "browser-tools: node and npm are missing; as root run: apt-get install -y nodejs npm" >&2
    exit 1
  fi
  echo "browser-tools: installing node and npm (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends nodejs npm
fi

# The pinned versions, as package-lock.json has them.
want() {
  node -e "const l=require('./tests/browser/package-lock.json');process.stdout.write(l.packages['node_modules/'+process.argv[1]].version)" "$1"
}
have() {
  node -e "try{process.stdout.write(require('./tests/browser/node_modules/'+process.argv[1]+'/package.json').version)}catch(e){}" "$1"
}
if [ "$(have playwright-core)" != "$(want playwright-core)" ] ||
   [ "$(have axe-core)" != "$(want axe-core)" ]; then
  echo "browser-tools: installing playwright-core and axe-core (npm ci in tests/browser)" >&2
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing
  # anyway; this makes sure no install hook ever does.
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
