#!/usr/bin/env bash
# LoRA benchmark (issue 11): what serving adapters beside their base costs. One Codepilot with
# the 0.5B-shape base and two synthesized adapters; 4 concurrent streams all on the base, then
# split over the base and one adapter, then over the base and both. llama.cpp applies adapters
# per context, so each adapter present in a step is a llama_decode call of its own; this
# measures what that grouping costs (docs/benchmarks.md). Tables show medians of the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
ROUNDS=${ROUNDS:-3}
bench_build loadgen
A1=$BUILD/bench-models/coder-0.5b-shape-lora-1.gguf
A2=$BUILD/bench-models/coder-0.5b-shape-lora-2.gguf
[ -f "$A1" ] || "$BUILD/src/codepilot" model synth "$A1" --lora-for "$MODEL" --lora-rank 8 --seed 1 >/dev/null
[ -f "$A2" ] || "$BUILD/src/codepilot" model synth "$A2" --lora-for "$MODEL" --lora-rank 8 --seed 2 >/dev/null
loadgen="$BUILD/bench/loadgen"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="bench/results/lora-$stamp.jsonl"
port=18621
cat > "$BUILD/bench-lora.toml" <<TOML
data_dir = "$BUILD/bench-lora-data"
[server]
port = $port
[auth]
enabled = false
[audit]
durability = "off"
[[models]]
id = "bench"
path = "$MODEL"
parallel = 4
ctx = 4096
threads = $THREADS
[[models]]
id = "a1"
backend = "lora"
base = "bench"
path = "$A1"
[[models]]
id = "a2"
backend = "lora"
base = "bench"
path = "$A2"
TOML
"$BUILD/src/codepilot" serve --config "$BUILD/bench-lora.toml" --log-level warn >"$BUILD/bench-lora.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait 2>/dev/null || true' EXIT
wait_healthy "$port" codepilot
"$loadgen" --port $port --concurrency 4 --requests 8 --max-tokens 4 --model bench --label warmup --prompt-offset 800000 >/dev/null

run() {  # label round model:concurrency...
    local label=$1 round=$2; shift 2
    local pids=() i=0
    for spec in "$@"; do
        "$loadgen" --port $port --concurrency "${spec#*:}" --requests $((4 * ${spec#*:})) --max-tokens 16 \
            --prompt-words 30 --prompt-offset $((round * 10000 + i * 1000)) --model "${spec%%:*}" \
            --label "$label" >>"$raw" &
        pids+=($!)
        i=$((i + 1))
    done
    wait "${pids[@]}"
}
for round in $(seq 1 "$ROUNDS"); do
    run base-only "$round" bench:4
    run one-adapter-only "$round" a1:4
    run base+1-adapter "$round" bench:2 a1:2
    run base+2-adapters "$round" bench:2 a1:1 a2:1
done

python3 - "$raw" "$ROUNDS" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rounds = int(sys.argv[2])
by = {}
for r in rows: by.setdefault(r["label"], []).append(r)
def per_round(label):  # the loadgens of one run overlap: their tokens/s add up
    rs = by[label]; n = len(rs) // rounds
    return [sum(r["tokens_per_s"] for r in rs[i * n:(i + 1) * n]) for i in range(rounds)]
base = statistics.median(per_round("base-only"))
print(f"Medians of {rounds} rounds, 4 concurrent streams of 16 tokens.\n")
print("| streams | tokens/s | vs base only | TTFT p50 ms |")
print("|---|---:|---:|---:|")
for label in ("base-only", "one-adapter-only", "base+1-adapter", "base+2-adapters"):
    tps = statistics.median(per_round(label))
    ttft = statistics.median(r["ttft_ms"]["p50"] for r in by[label])
    print(f"| {label} | {tps:.1f} | {tps / base:.2f} | {ttft:.1f} |")
PY
echo "raw results: $raw" >&2
