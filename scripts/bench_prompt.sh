#!/usr/bin/env bash
# Cold prompt evaluation speed (issue 19): codepilot (deterministic, the default) and a
# deterministic = false variant vs llama-server from the same pinned tree, same model and
# threads, one request at a time, servers alternating round by round; medians and ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
ROUNDS=${ROUNDS:-2}
REQUESTS=${REQUESTS:-3}
WORDS=${WORDS:-"80 700"}
SERVERS=${SERVERS:-"codepilot codepilot-nondeterministic llama-server"}

bench_build
raw="bench/results/prompt-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
port=18710
printf '[model]\ndeterministic = false\n' > "$BUILD/bench-nondeterministic.toml"
: > "$BUILD/bench-empty.toml"

start() {  # name
    case "$1" in
        codepilot|codepilot-nondeterministic)
            cfg="$BUILD/bench-empty.toml"
            [ "$1" = codepilot-nondeterministic ] && cfg="$BUILD/bench-nondeterministic.toml"
            "$BUILD/src/codepilot" serve --config "$cfg" --model "$MODEL" --port $port --threads "$THREADS" \
                --parallel 4 --ctx 16384 --log-level warn --data-dir "$BUILD/bench-data" --auth off & ;;
        llama-server)
            "$BUILD/bin/llama-server" -m "$MODEL" --port $port -t "$THREADS" -tb "$THREADS" -np 4 -c 16384 \
                --no-webui --log-disable >/dev/null 2>&1 & ;;
    esac
    pid=$!
    wait_healthy $port "$1"
}

for round in $(seq 1 "$ROUNDS"); do
    for server in $SERVERS; do
        start "$server"
        # shellcheck disable=SC2086
        python3 bench/prompt_speed.py --port $port --label "$server" --words $WORDS --requests "$REQUESTS" \
            --seed "$round" | tee -a "$raw" >&2
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done

python3 - "$raw" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cells = {}
for r in rows: cells.setdefault((r["words"], r["label"]), []).append(r)
print("| prompt tokens | server | prompt tokens/s | ratio vs llama-server |")
print("|---:|---|---:|---:|")
for (w, label), rs in sorted(cells.items()):
    rate = statistics.median(r["prompt_tokens_per_s"] for r in rs)
    base = cells.get((w, "llama-server"))
    ratio = f"{rate / statistics.median(r['prompt_tokens_per_s'] for r in base):.2f}" if base else "—"
    print(f"| {statistics.median(r['prompt_tokens'] for r in rs):.0f} | {label} | {rate:.1f} | {ratio} |")
PY
echo "raw results: $raw" >&2
