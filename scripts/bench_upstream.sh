#!/usr/bin/env bash
# Upstream routing benchmark (issue 11): what routing through Codepilot to an upstream
# llama-server adds over calling it directly (short streamed completions, one at a time), and
# the throughput of one upstream model with two replicas vs one. Everything on loopback; the
# servers alternate round by round and the tables show medians (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_common.sh
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200}           # overhead runs: sequential requests per round
TINY=${TINY:-$BUILD/bench-models/tiny-starcoder.gguf}
bench_build loadgen
[ -f "$TINY" ] || "$BUILD/src/codepilot" model synth "$TINY" --vocab starcoder --layers 2 --embd 64 --heads 4 \
    --kv-heads 2 --ff 128 >/dev/null
loadgen="$BUILD/bench/loadgen"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="bench/results/upstream-$stamp.jsonl"
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

llama() {  # port model threads
    "$BUILD/bin/llama-server" -m "$2" --host 127.0.0.1 --port "$1" -t "$3" -tb "$3" -np 4 -c 4096 \
        --no-webui --log-disable >/dev/null 2>&1 &
    pids+=($!)
    wait_healthy "$1" llama-server
}
front() {  # port urls...
    local port=$1; shift
    local list
    list=$(printf '"%s",' "$@"); list="[${list%,}]"
    cat > "$BUILD/bench-upstream-$port.toml" <<TOML
data_dir = "$BUILD/bench-upstream-data-$port"
[server]
port = $port
[auth]
enabled = false
[audit]
durability = "off"
[[models]]
id = "bench"
backend = "upstream"
urls = $list
fim = "starcoder"
context = 4096
TOML
    "$BUILD/src/codepilot" serve --config "$BUILD/bench-upstream-$port.toml" --log-level warn \
        >"$BUILD/bench-upstream-$port.log" 2>&1 &
    pids+=($!)
    wait_healthy "$port" codepilot
}

# 1. Added latency: the tiny model, so that the upstream's own time is small next to the proxy's.
llama 18601 "$TINY" 1
front 18602 http://127.0.0.1:18601
for round in $(seq 1 "$ROUNDS"); do
    for target in direct:18601 codepilot:18602; do
        "$loadgen" --port "${target#*:}" --concurrency 1 --requests 20 --max-tokens 8 --model bench --label warmup \
            --prompt-offset 900000 >/dev/null
        "$loadgen" --port "${target#*:}" --concurrency 1 --requests "$REQUESTS" --max-tokens 8 --prompt-words 30 \
            --prompt-offset $((round * 10000)) --model bench --label "overhead-${target%%:*}" | tee -a "$raw" >&2
    done
done
cleanup; pids=()

# 2. Throughput: the 0.5B-shape model, one thread per replica, 4 streams through Codepilot.
llama 18611 "$MODEL" 1
llama 18612 "$MODEL" 1
front 18613 http://127.0.0.1:18611
front 18614 http://127.0.0.1:18611 http://127.0.0.1:18612
for p in 18613 18614; do  # first requests load the model's pages: not part of the runs
    "$loadgen" --port $p --concurrency 4 --requests 4 --max-tokens 4 --model bench --label warmup --prompt-offset 800000 >/dev/null || true
done
for round in $(seq 1 "$ROUNDS"); do
    for target in one-replica:18613 two-replicas:18614; do
        "$loadgen" --port "${target#*:}" --concurrency 4 --requests 16 --max-tokens 16 --prompt-words 30 \
            --prompt-offset $((round * 10000 + 500)) --model bench --label "${target%%:*}" | tee -a "$raw" >&2 || true
    done
done
grep -h -E "warn|error" "$BUILD"/bench-upstream-1861*.log >&2 || true

python3 - "$raw" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows: by.setdefault(r["label"], []).append(r)
med = lambda rs, f: statistics.median(f(r) for r in rs)
print(f"Medians of {len(by['overhead-direct'])} interleaved rounds.\n")
print("| path | E2E p50 ms | E2E p99 ms | TTFT p50 ms | TTFT p99 ms |")
print("|---|---:|---:|---:|---:|")
for label in ("overhead-direct", "overhead-codepilot"):
    rs = by[label]
    print(f"| {label[9:]} | {med(rs, lambda r: r['e2e_ms']['p50']):.2f} | {med(rs, lambda r: r['e2e_ms']['p99']):.2f} | "
          f"{med(rs, lambda r: r['ttft_ms']['p50']):.2f} | {med(rs, lambda r: r['ttft_ms']['p99']):.2f} |")
d, c = by["overhead-direct"], by["overhead-codepilot"]
for name, key in (("E2E", "e2e_ms"), ("TTFT", "ttft_ms")):
    for p in ("p50", "p99"):
        print(f"\nadded {name} {p}: {med(c, lambda r: r[key][p]) - med(d, lambda r: r[key][p]):.2f} ms", end="")
print("\n\n| replicas | tokens/s | ratio |")
print("|---|---:|---:|")
one = med(by["one-replica"], lambda r: r["tokens_per_s"])
two = med(by["two-replicas"], lambda r: r["tokens_per_s"])
print(f"| 1 | {one:.1f} | 1.00 |")
print(f"| 2 | {two:.1f} | {two / one:.2f} |")
PY
echo "raw results: $raw" >&2
