#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang-14, our code with ASan + UBSan) and runs each
# for SECONDS (default 60). `make fuzz` runs it; `make test` runs it for a few seconds each so
# a regression in a parser shows in CI. Each harness keeps a working corpus in
# $FUZZ_BUILD/corpus/<name> (grown run over run) seeded from fuzz/corpus/<name>; a crash, a
# sanitizer report, a timeout or a broken invariant leaves its input in $FUZZ_BUILD/findings/
# and fails the run. Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
build=${FUZZ_BUILD:-build-fuzz}
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(fuzz_http fuzz_request_fields fuzz_fim_prompt fuzz_jwt fuzz_config fuzz_redactor fuzz_guard_scan)

for tool in clang-14 clang++-14; do
    if ! command -v "$tool" >/dev/null; then
        echo "fuzz: SKIPPED: $tool is not installed (scripts/deps.sh installs clang-14 and libclang-rt-14-dev)"
        exit 0
    fi
done
if ! ls /usr/lib/llvm-14/lib/clang/14*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: libFuzzer's runtime is missing (Debian package libclang-rt-14-dev)"
    exit 0
fi

export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DCODEPILOT_FUZZ=ON -DCODEPILOT_BUILD_TESTS=OFF -DCODEPILOT_WERROR=OFF >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log"; exit 1; }
cmake --build "$build" --target fuzzers -j"$(nproc)" >"$build/build.log" 2>&1 || { tail -50 "$build/build.log"; exit 1; }

# UB is fatal (the build says so); leaks at exit of a harness are not findings of the parser.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
mkdir -p "$build/findings"
summary="$build/fuzz-summary.txt"
printf '%-22s %12s %10s %8s %s\n' harness executions exec/s corpus result | tee "$summary"
failed=0
for h in "${harnesses[@]}"; do
    work="$build/corpus/$h"
    mkdir -p "$work"
    dict=()
    [ -f "fuzz/$h.dict" ] && dict=(-dict="fuzz/$h.dict")
    log="$build/$h.log"
    "$build/fuzz/$h" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=6144 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$build/findings/$h-" "${dict[@]}" "$work" "fuzz/corpus/$h" >"$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    size=$(find "$work" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        result=ok
    else
        result="FOUND (exit $rc): $(grep -m1 -E 'ERROR: |invariant broken|runtime error|Timeout|out-of-memory' "$log" | cut -c1-120)"
        failed=1
    fi
    printf '%-22s %12s %10s %8s %s\n' "$h" "${runs:-?}" "${rate:-?}" "$size" "$result" | tee -a "$summary"
    if [ $rc -ne 0 ]; then
        echo "  log: $log; input: $(ls -t "$build/findings/$h-"* 2>/dev/null | head -1)"
        echo "  reproduce: $build/fuzz/$h <input>"
        tail -40 "$log" | sed 's/^/  | /'
    fi
done
exit $failed
