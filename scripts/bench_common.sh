# Shared by the benchmark scripts (sourced): build the tools, make the model, wait for a server.
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
MODEL=${MODEL:-$BUILD/bench-models/coder-0.5b-shape-q8_0.gguf}

bench_build() {  # targets...
    cmake -S . -B "$BUILD" -DCODEPILOT_BUILD_BENCH=ON -DCODEPILOT_BUILD_LLAMA_SERVER=ON >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target codepilot llama-server "$@" >/dev/null
    if [ ! -f "$MODEL" ]; then
        echo "bench: synthesizing $MODEL (the shape of a 0.5B code model)" >&2
        "$BUILD/src/codepilot" model synth "$MODEL" --vocab qwen2-coder --layers 24 --embd 896 --heads 14 \
            --kv-heads 2 --ff 4864 --type q8_0 --ctx-train 32768 >/dev/null
    fi
    mkdir -p bench/results
}

wait_healthy() {  # port name
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "bench: $2 did not become healthy" >&2
    return 1
}
