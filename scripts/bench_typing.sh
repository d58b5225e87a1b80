#!/usr/bin/env bash
# Typing benchmark (issue 3): developers editing their own ~150-line files, 1-6 characters
# then 250 ms between requests, 32-token completions with ignore_eos. codepilot (/infill and
# the Tabby shape) vs llama-server --cache-reuse 256 -np 4 (/infill) built from the same
# pinned tree, same model and threads, servers alternating round by round; medians.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
USERS=${USERS:-"1 4"}
REQUESTS=${REQUESTS:-12}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-0}  # 1: measure steady typing, after each developer's first (cold, whole-file) request

bench_build typing
raw="bench/results/typing-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
port=18700
printf '[completion]\nmax_tokens = 32\n' > "$BUILD/bench-typing.toml"

start() {  # name
    case "$1" in
        codepilot*)
            "$BUILD/src/codepilot" serve --config "$BUILD/bench-typing.toml" --model "$MODEL" --port $port \
                --threads "$THREADS" --parallel 4 --ctx 8192 --log-level warn --data-dir "$BUILD/bench-data" --auth off & ;;
        llama-server)
            "$BUILD/bin/llama-server" -m "$MODEL" --port $port -t "$THREADS" -tb "$THREADS" -np 4 -c 8192 \
                --cache-reuse 256 --no-webui --log-disable >/dev/null 2>&1 & ;;
    esac
    pid=$!
    wait_healthy $port "$1"
}

for round in $(seq 1 "$ROUNDS"); do
    for server in codepilot-infill codepilot-tabby llama-server; do
        start "$server"
        shape=infill
        [ "$server" = codepilot-tabby ] && shape=tabby
        for u in $USERS; do
            "$BUILD/bench/typing" --port $port --users "$u" --requests "$REQUESTS" --warmup "$WARMUP" --shape "$shape" --label "$server" \
                | tee -a "$raw" >&2
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done

python3 - "$raw" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows: cells.setdefault((r["users"], r["label"]), []).append(r)
med = lambda rs, f: statistics.median(f(r) for r in rs)
print(f"Medians of {max(len(v) for v in cells.values())} interleaved rounds.")
print()
print("| users | server | latency p50 ms | latency p95 ms | completions/s | prompt cached (p50) |")
print("|---:|---|---:|---:|---:|---:|")
for (u, label), rs in sorted(cells.items()):
    print(f"| {u} | {label} | {med(rs, lambda r: r['latency_ms']['p50']):.0f} | {med(rs, lambda r: r['latency_ms']['p95']):.0f} | "
          f"{med(rs, lambda r: r['completions_per_s']):.2f} | {med(rs, lambda r: r['prompt_cached_ratio_p50']):.2f} |")
print()
print("| users | server | p50 latency ratio (vs llama-server) | completions/s ratio |")
print("|---:|---|---:|---:|")
for (u, label), rs in sorted(cells.items()):
    base = cells.get((u, "llama-server"))
    if label == "llama-server" or not base: continue
    print(f"| {u} | {label} | {med(rs, lambda r: r['latency_ms']['p50']) / med(base, lambda r: r['latency_ms']['p50']):.2f} | "
          f"{med(rs, lambda r: r['completions_per_s']) / med(base, lambda r: r['completions_per_s']):.2f} |")
PY
echo "raw results: $raw" >&2
