#!/usr/bin/env bash
# Typing benchmark (issues 3 and 19): developers editing their own files, 250 ms between
# requests, 32-token completions with ignore_eos; workload variants: new text typed or the
# cursor moving through existing code (EDITS), whole-file / tabby-agent 20+20-line /
# llama.vscode 256+64-line windows (WINDOWS). codepilot (/infill and the Tabby shape) vs
# llama-server --cache-reuse 256 -np 4 (/infill) built from the same pinned tree, same model
# and threads, servers alternating round by round; medians.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
USERS=${USERS:-"1 4"}
WINDOWS=${WINDOWS:-"file tabby vscode"}
EDITS=${EDITS:-"type move"}
SERVERS=${SERVERS:-"codepilot-infill codepilot-tabby llama-server"}
CTX=${CTX:-16384}  # 4096 cells a sequence: llama-server's /infill fills up to its 2048-token batch
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
                --threads "$THREADS" --parallel 4 --ctx "$CTX" --log-level warn --data-dir "$BUILD/bench-data" --auth off & ;;
        llama-server)
            "$BUILD/bin/llama-server" -m "$MODEL" --port $port -t "$THREADS" -tb "$THREADS" -np 4 -c "$CTX" \
                --cache-reuse 256 --no-webui --log-disable >/dev/null 2>&1 & ;;
    esac
    pid=$!
    wait_healthy $port "$1"
}

for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS; do
        start "$server"
        shape=infill
        [ "$server" = codepilot-tabby ] && shape=tabby
        for window in $WINDOWS; do
            for edit in $EDITS; do
                for u in $USERS; do
                    "$BUILD/bench/typing" --port $port --users "$u" --requests "$REQUESTS" --warmup "$WARMUP" \
                        --shape "$shape" --label "$server" --window "$window" --edit "$edit" | tee -a "$raw" >&2
                done
            done
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done

python3 - "$raw" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows: cells.setdefault((r.get("window", "file"), r.get("edit", "type"), r["users"], r["label"]), []).append(r)
med = lambda rs, f: statistics.median(f(r) for r in rs)
print(f"Medians of {max(len(v) for v in cells.values())} interleaved round(s).")
print()
print("| window | edit | users | server | p50 ms | p95 ms | completions/s | cached (p50) | evaluated (p50) | p50 ratio | completions/s ratio |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for key, rs in sorted(cells.items()):
    window, edit, u, label = key
    base = cells.get((window, edit, u, "llama-server"))
    p50 = med(rs, lambda r: r['latency_ms']['p50'])
    cps = med(rs, lambda r: r['completions_per_s'])
    ratio = cratio = "—"
    if base and label != "llama-server":
        ratio = f"{p50 / med(base, lambda r: r['latency_ms']['p50']):.2f}"
        cratio = f"{cps / med(base, lambda r: r['completions_per_s']):.2f}"
    cached = med(rs, lambda r: r['prompt_cached_ratio_p50']) if label != "codepilot-tabby" else None
    ev = med(rs, lambda r: r.get('prompt_evaluated_p50', 0)) if label != "codepilot-tabby" else None
    print(f"| {window} | {edit} | {u} | {label} | {p50:.0f} | {med(rs, lambda r: r['latency_ms']['p95']):.0f} | {cps:.2f} | "
          f"{'n/a' if cached is None else f'{cached:.2f}'} | {'n/a' if ev is None else f'{ev:.0f}'} | {ratio} | {cratio} |")
PY
echo "raw results: $raw" >&2
