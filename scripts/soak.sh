#!/usr/bin/env bash
# The soak (issue "Scale out and hold up", item 5): `roster bench soak` on
# a release build, 30 minutes of mixed SCIM, API and reconciliation load
# at half the capacity it measures first, on loopback in one process.
# Prints a line a minute and writes the JSON report.
#
#   scripts/soak.sh                      # 30 minutes, 20,000 people x 20 apps
#   SOAK_MINUTES=5 scripts/soak.sh --people 100000
#
# Extra arguments go to `roster bench soak` (see its --help). The report
# goes to $SOAK_REPORT (default target/soak-report.json under the cargo
# target directory). Fails when a request or a plan failed, when the last
# minute's peak RSS is more than 1.2x the second's, or when the last
# minute's p99 is more than 2x the median minute's.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
report="${SOAK_REPORT:-$target/soak-report.json}"
cargo build --release --locked -p roster-cli
"$target/release/roster" bench soak --minutes "${SOAK_MINUTES:-30}" "$@" | tee "$report"
python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = []
if r["failed"] or r["shed"] or r["plans_failed"]:
    bad.append(f'{r["failed"]} request(s) failed, {r["shed"]} shed (overload), {r["plans_failed"]} plan(s) failed')
if r["rss_growth"] is not None and r["rss_growth"] > 1.2:
    bad.append(f'memory grew {r["rss_growth"]}x from the second minute to the last')
if r["p99_last_vs_median"] is not None and r["p99_last_vs_median"] > 2.0:
    bad.append(f'the last minute p99 is {r["p99_last_vs_median"]}x the median minute')
print(f'soak: {r["requests"]} requests at {r["rate_per_second"]}/s (capacity {r["capacity_per_second"]}/s), '
      f'{r["plans"]} plans; rss growth {r["rss_growth"]}, p99 last/median {r["p99_last_vs_median"]}', file=sys.stderr)
if bad:
    print("soak FAILED: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
print("soak passed", file=sys.stderr)
PY
