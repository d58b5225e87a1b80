#!/usr/bin/env bash
# How often shifted KV reuse changes a completion (issue 19): the same cursor-moving /infill
# requests to codepilot with shifted reuse (the default) and with exact reuse only, the 0.5B
# model shape; one JSON line. Not a speed benchmark: both servers run at once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
REQUESTS=${REQUESTS:-40}
bench_build
printf '[model]\nkv_shift_min_chunk = 0\n' > "$BUILD/bench-exact.toml"
: > "$BUILD/bench-empty.toml"
"$BUILD/src/codepilot" serve --config "$BUILD/bench-empty.toml" --model "$MODEL" --port 18720 --threads 1 \
    --parallel 1 --ctx 4096 --log-level warn --data-dir "$BUILD/bench-data-a" --auth off &
a=$!
"$BUILD/src/codepilot" serve --config "$BUILD/bench-exact.toml" --model "$MODEL" --port 18721 --threads 1 \
    --parallel 1 --ctx 4096 --log-level warn --data-dir "$BUILD/bench-data-b" --auth off &
b=$!
trap 'kill $a $b 2>/dev/null || true' EXIT
wait_healthy 18720 shifting
wait_healthy 18721 exact
python3 bench/shift_exactness.py --shifting-port 18720 --exact-port 18721 --requests "$REQUESTS" \
    | tee "bench/results/shift-exactness-$(date -u +%Y%m%dT%H%M%SZ).json"
