#!/usr/bin/env bash
# Fuzzes the SCIM filter parser and the PATCH applier with cargo-fuzz
# (libFuzzer) for a bounded time each: FUZZ_SECONDS (default 60) per target.
#
#   ./scripts/fuzz.sh            # both targets, 60 s each
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh filter
#
# cargo-fuzz wants a nightly compiler for sanitizers; with --sanitizer none
# stable works when RUSTC_BOOTSTRAP=1 lets it pass its -Z flags. Crashes are
# written under crates/scim/fuzz/artifacts/<target>/ and fail the script.
# The same inputs' invariants also run in the ordinary test suite
# (roster-scim's fuzz smoke test), so CI covers them without libFuzzer.
#
# Other inputs are fuzzed by bounded proptest mutations of kept corpora in
# the ordinary test suite, a few seconds each; ROSTER_FUZZ_CASES=N runs N
# mutations per target for a longer run:
#   roster-core       tests/fuzz_inputs.rs     policy files, HR CSV and JSON
#   roster-server     tests/fuzz_ingest.rs     SCIM Bulk and resource bodies
#                                              into the gateway (in-process)
#   roster-connectors tests/fuzz_responses.rs  vendor answers into each
#                                              connector's read (loopback fake)
#   ROSTER_FUZZ_CASES=5000 cargo test -p roster-connectors --test fuzz_responses
set -euo pipefail
cd "$(dirname "$0")/../crates/scim"

seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(filter patch)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  cargo install cargo-fuzz --locked
fi

for t in "${targets[@]}"; do
  echo "=== fuzzing $t for ${seconds}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" --sanitizer none -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1
done
