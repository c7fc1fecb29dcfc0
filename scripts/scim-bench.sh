#!/usr/bin/env bash
# SCIM server benchmark: roster's SCIM service provider against two peers,
# PyPI's scim2-server 0.8.3 and SCIMMY (npm scimmy 1.3.5 + scimmy-routers
# 1.3.2 on Express 5, in memory), 16 concurrent connections on loopback,
# bounded durations. Prints requests/s and p50/p99 latency per request type
# (filter lookup, GET by id, PATCH active, POST) for each server, then
# roster's throughput as a multiple of each peer's, per run (the three
# servers one after the other, so the ratios come from the same run) and
# the median over the runs.
#
# Usage: scripts/scim-bench.sh [DURATION_S] [ROSTER_USERS] [PEER_USERS]
#   defaults: 10 s per request type, 5000 users in roster (seeded through
#   the store) and 5000 in each peer (seeded over HTTP; in memory).
# Environment:
#   RUNS=3      runs of the three servers (the ratios' median is printed)
#   ONLY=...    request types, default filter,get,patch,post
#   SCALE=0     skip the filter lookups with 10,000 and 1,000,000 users
#               stored (they show lookups do not degrade with size)
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-10}"
roster_users="${2:-5000}"
peer_users="${3:-$roster_users}"
runs="${RUNS:-3}"
only="${ONLY:-filter,get,patch,post}"

if [ ! -x .venv/bin/scim2-server ]; then
  bash scripts/python-tools.sh
fi
bash scripts/node-tools.sh >/dev/null
cargo build --locked --release -q -p roster-server --example scim_bench
bench="${CARGO_TARGET_DIR:-target}/release/examples/scim_bench"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for run in $(seq 1 "$runs"); do
  echo "== run ${run}/${runs}: roster (SQLite, ${roster_users} users)"
  "$bench" roster --users "$roster_users" --duration "$duration" --only "$only" |
    sed "s/^/run=${run} /" | tee -a "$log"
  echo "== run ${run}/${runs}: scim2-server 0.8.3 (${peer_users} users)"
  "$bench" peer --users "$peer_users" --duration "$duration" --only "$only" |
    sed "s/^/run=${run} /" | tee -a "$log"
  echo "== run ${run}/${runs}: SCIMMY (${peer_users} users)"
  "$bench" scimmy --users "$peer_users" --duration "$duration" --only "$only" |
    sed "s/^/run=${run} /" | tee -a "$log"
done

echo "== roster's requests/s as a multiple of each peer's (same run; median of ${runs})"
python3 - "$log" <<'PY'
import statistics, sys
rps = {}  # (run, target, kind) -> req/s
for line in open(sys.argv[1]):
    f = line.split()
    # run=N TARGET KIND COUNT req RPS req/s ...
    if len(f) > 6 and f[0].startswith("run=") and f[6] == "req/s":
        rps[(f[0][4:], f[1], f[2])] = float(f[5])
runs = sorted({r for r, _, _ in rps})
kinds = [k for k in ["filter", "get", "patch", "post"] if any(key[2] == k for key in rps)]
print(f"{'type':<7} {'roster req/s':>13} {'scim2-server':>12} {'SCIMMY':>9}"
      f" {'x scim2-server':>15} {'x SCIMMY':>9}   per run (x scim2-server / x SCIMMY)")
for k in kinds:
    per_run, med = [], {}
    for t in ["roster", "peer", "scimmy"]:
        vals = [rps[(r, t, k)] for r in runs if (r, t, k) in rps]
        med[t] = statistics.median(vals) if vals else float("nan")
    ratios = {"peer": [], "scimmy": []}
    for r in runs:
        mine = rps.get((r, "roster", k))
        cells = []
        for t in ["peer", "scimmy"]:
            other = rps.get((r, t, k))
            if mine and other:
                ratios[t].append(mine / other)
                cells.append(f"{mine / other:.1f}")
            else:
                cells.append("-")
        per_run.append("/".join(cells))
    rm = {t: (statistics.median(v) if v else float("nan")) for t, v in ratios.items()}
    print(f"{k:<7} {med['roster']:>13.0f} {med['peer']:>12.0f} {med['scimmy']:>9.0f}"
          f" {rm['peer']:>14.1f}x {rm['scimmy']:>8.1f}x   {'  '.join(per_run)}")
PY

if [ "${SCALE:-1}" != "0" ]; then
  for n in 10000 1000000; do
    echo "== roster filter lookups with ${n} users"
    "$bench" roster --users "$n" --duration "$duration" --only filter
  done
fi
