#!/usr/bin/env bash
# Serving benchmark: codepilot vs llama-server built from the same pinned llama.cpp tree,
# same model, same threads, same parallel sequences and concurrency, in one run.
# Prints a Markdown table and writes raw JSON lines to bench/results/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
PARALLEL=${PARALLEL:-16}
CTX=${CTX:-8192}
CONCURRENCY=${CONCURRENCY:-"1 4 16"}
MAX_TOKENS=${MAX_TOKENS:-64}
PROMPT_WORDS=${PROMPT_WORDS:-80}
REQUESTS_PER_CLIENT=${REQUESTS_PER_CLIENT:-2}
SERVERS=${SERVERS:-"codepilot llama-server"}
ROUNDS=${ROUNDS:-3}  # servers alternate round by round; the tables show medians (this machine is noisy)

bench_build loadgen
codepilot="$BUILD/src/codepilot"
llama_server="$BUILD/bin/llama-server"
loadgen="$BUILD/bench/loadgen"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="bench/results/serving-$stamp.jsonl"
port=18500

start_server() {  # name
    case "$1" in
        codepilot)
            "$codepilot" serve --model "$MODEL" --model-name bench --port $port --threads "$THREADS" \
                --parallel "$PARALLEL" --ctx "$CTX" --log-level warn --data-dir "$BUILD/bench-data" --auth off &
            ;;
        codepilot-variant)  # CODEPILOT_TOML: extra [model] settings to compare, e.g. "deterministic = false"
            printf '[model]\n%b\n' "${CODEPILOT_TOML:-}" > "$BUILD/bench-variant.toml"
            "$codepilot" serve --config "$BUILD/bench-variant.toml" --model "$MODEL" --model-name bench \
                --port $port --threads "$THREADS" --parallel "$PARALLEL" --ctx "$CTX" --log-level warn \
                --data-dir "$BUILD/bench-data" --auth off &
            ;;
        llama-server)
            "$llama_server" -m "$MODEL" --port $port -t "$THREADS" -tb "$THREADS" -np "$PARALLEL" -c "$CTX" \
                --no-webui --log-disable >/dev/null 2>&1 &
            ;;
    esac
    pid=$!
    wait_healthy $port "$1"
}

for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS; do
        start_server "$server"
        "$loadgen" --port $port --concurrency 1 --requests 1 --max-tokens 8 --prompt-offset 999999 --model bench \
            --label warmup >/dev/null
        for c in $CONCURRENCY; do
            n=$((c * REQUESTS_PER_CLIENT))
            # Fresh prompts for every run (the same ones for every server), so that no prompt
            # cache serves a repeat from an earlier run.
            offset=$((round * 100000 + c * 1000))
            "$loadgen" --port $port --concurrency "$c" --requests "$n" --max-tokens "$MAX_TOKENS" --prompt-offset "$offset" \
                --prompt-words "$PROMPT_WORDS" --model bench --label "$server" | tee -a "$raw" >&2
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done

python3 - "$raw" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows: cells.setdefault((r["concurrency"], r["label"]), []).append(r)
def med(rs, f): return statistics.median(f(r) for r in rs)
print(f"Medians of {max(len(v) for v in cells.values())} interleaved rounds.")
print()
print("| streams | server | tokens/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | E2E p50 ms | E2E p99 ms |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for (c, label), rs in sorted(cells.items()):
    print(f"| {c} | {label} | {med(rs, lambda r: r['tokens_per_s']):.1f} | {med(rs, lambda r: r['ttft_ms']['p50']):.0f} | "
          f"{med(rs, lambda r: r['ttft_ms']['p99']):.0f} | {med(rs, lambda r: r['itl_ms']['p50']):.1f} | "
          f"{med(rs, lambda r: r['itl_ms']['p99']):.1f} | {med(rs, lambda r: r['e2e_ms']['p50']):.0f} | "
          f"{med(rs, lambda r: r['e2e_ms']['p99']):.0f} |")
labels = sorted({l for _, l in cells})
base = "llama-server"
for label in labels:
    if label == base: continue
    print()
    print(f"| streams | tokens/s ratio ({label} / {base}) | TTFT p50 ratio | E2E p50 ratio |")
    print("|---:|---:|---:|---:|")
    for c in sorted({c for c, _ in cells}):
        a, b = cells.get((c, label)), cells.get((c, base))
        if not a or not b: continue
        tps = med(a, lambda r: r['tokens_per_s']) / med(b, lambda r: r['tokens_per_s'])
        ttft = med(a, lambda r: r['ttft_ms']['p50']) / med(b, lambda r: r['ttft_ms']['p50'])
        e2e = med(a, lambda r: r['e2e_ms']['p50']) / med(b, lambda r: r['e2e_ms']['p50'])
        print(f"| {c} | {tps:.2f} | {ttft:.2f} | {e2e:.2f} |")
PY
echo "raw results: $raw" >&2
