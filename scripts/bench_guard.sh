#!/usr/bin/env bash
# Guard benchmarks (issue 14): `codepilot guard scan` with every rule on (--pii included) over
# the source files of the pinned llama.cpp tree, one process on one core (MB/s is bytes scanned
# over wall time, best of ROUNDS); then what the guard adds per request: guard_body() on 8 KB
# prompts cut from the same tree (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCODEPILOT_BUILD_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target codepilot guard_latency >/dev/null
ROUNDS=${ROUNDS:-3}
PII=${PII---pii}        # PII= : credential rules only
tree=${TREE:-third_party/llama.cpp}
list=$(mktemp)
trap 'rm -f "$list"' EXIT
find "$tree" -path '*/.git' -prune -o -type f \( -name '*.c' -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' \
    -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' -o -name '*.m' -o -name '*.metal' -o -name '*.comp' \
    -o -name '*.py' -o -name '*.js' -o -name '*.ts' -o -name '*.svelte' -o -name '*.sh' -o -name '*.cmake' \
    -o -name 'CMakeLists.txt' -o -name '*.md' -o -name '*.json' -o -name '*.yml' -o -name '*.yaml' -o -name '*.toml' \) \
    -print0 >"$list"
bytes=$(du -cb --files0-from="$list" | tail -1 | cut -f1)
files=$(tr -cd '\0' <"$list" | wc -c)
best=""
for _ in $(seq 1 "$ROUNDS"); do
    start=$(date +%s.%N)
    xargs -0 -n 100000 taskset -c 0 "$BUILD/src/codepilot" guard scan $PII <"$list" >/dev/null 2>&1 || true
    end=$(date +%s.%N)
    t=$(echo "$end - $start" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
done
printf 'scanned %d files, %.1f MB, best of %d: %.3f s = %.0f MB/s on one core\n' "$files" \
    "$(echo "$bytes / 1000000" | bc -l)" "$ROUNDS" "$best" "$(echo "$bytes / 1000000 / $best" | bc -l)"
taskset -c 0 "$BUILD/bench/guard_latency" "$tree" --bytes 8192 --prompts 2000
