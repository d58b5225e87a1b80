#!/usr/bin/env bash
# /health and short-completion latency while 32 sign-ins wait on a stopped directory, inline
# (the I/O threads do the work, as before issue 9) vs pooled (the worker lanes); sign-ins/s.
# make bench-signin starts the throw-away slapd this needs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
cmake -S . -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target codepilot >/dev/null
MODEL=$BUILD/bench-models/signin-tiny.gguf
[ -f "$MODEL" ] || "$BUILD/src/codepilot" model synth "$MODEL" --vocab qwen2-coder --layers 2 --embd 64 --heads 2 \
    --kv-heads 1 --ff 128 >/dev/null
env_file="$BUILD/test-services.env"
ldap_url=$(grep CODEPILOT_TEST_LDAP_URL= "$env_file" | cut -d= -f2-)
pid_file=$(grep CODEPILOT_TEST_SLAPD_PID_FILE= "$env_file" | cut -d= -f2-)
mkdir -p bench/results
out="bench/results/signin-$(date -u +%Y%m%dT%H%M%SZ).md"
python3 bench/signin_stall.py --binary "$BUILD/src/codepilot" --model "$MODEL" --ldap-url "$ldap_url" \
    --slapd-pid-file "$pid_file" "$@" | tee "$out"
