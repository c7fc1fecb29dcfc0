#!/usr/bin/env bash
# The supply-chain check: `cargo deny check licenses bans sources` against
# deny.toml. Installs cargo-deny from crates.io the first time
# (`cargo install cargo-deny --locked`), then works without the network:
# the advisory database is never fetched (it cannot be on the machines
# roster is built on), so advisories are not checked here.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "cargo-deny not found; installing it (cargo install cargo-deny --locked)" >&2
  cargo install cargo-deny --locked
fi
# cargo-deny reads the whole dependency graph, every platform's crates
# included: make sure they are in the local cache (a no-op once fetched).
cargo fetch --locked --offline >/dev/null 2>&1 || cargo fetch --locked
exec cargo deny --frozen check licenses bans sources
