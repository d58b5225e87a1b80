#!/usr/bin/env bash
# Exact-response cache benchmark (issue 12): requests/s of greedy streamed completions that
# cycle through a few prompts (a team asking for the same hot snippets), against one Codepilot
# with [cache] responses on and one with it off, same model, threads and sequences, the two
# alternating round by round (docs/benchmarks.md). Medians of the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-96}
DISTINCT=${DISTINCT:-8}
bench_build loadgen
loadgen="$BUILD/bench/loadgen"
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
serve() {  # port responses
    cat > "$BUILD/bench-cache-$1.toml" <<TOML
data_dir = "$BUILD/bench-cache-data-$1"
[server]
port = $1
[auth]
enabled = false
[audit]
durability = "off"
[model]
path = "$MODEL"
name = "bench"
threads = 2
parallel = 4
[cache]
responses = $2
TOML
    "$BUILD/src/codepilot" serve --config "$BUILD/bench-cache-$1.toml" --log-level warn >"$BUILD/bench-cache-$1.log" 2>&1 &
    pids+=($!)
    wait_healthy "$1" codepilot
}
serve 18701 0
serve 18702 10000
results=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
    for target in off:18701 on:18702; do
        # A fresh set of prompts each round: the first DISTINCT requests of a round are misses.
        "$loadgen" --port "${target#*:}" --concurrency 4 --requests "$REQUESTS" --max-tokens 16 --prompt-words 30 \
            --distinct "$DISTINCT" --prompt-offset $((round * 1000)) --model bench --label "${target%%:*}" >>"$results"
    done
done
python3 - "$results" "$REQUESTS" "$DISTINCT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
req, distinct = int(sys.argv[2]), int(sys.argv[3])
def med(label, f): return statistics.median(f(r) for r in rows if r["label"] == label)
qps = {l: med(l, lambda r: r["requests"] / r["wall_s"]) for l in ("off", "on")}
p50 = {l: med(l, lambda r: r["e2e_ms"]["p50"]) for l in ("off", "on")}
print(f"{req} greedy streamed completions (16 tokens), 4 clients, cycling through {distinct} prompts:")
print("| cache | requests/s | e2e p50 ms |\n|---|---:|---:|")
for l in ("off", "on"): print(f"| {l} | {qps[l]:.1f} | {p50[l]:.0f} |")
print(f"cache on / off: {qps['on'] / qps['off']:.1f}x requests/s (hit ratio at most {(req - distinct) / req:.0%})")
PY
