#!/usr/bin/env bash
# Per-request overhead of the policy layer: wrk on GET /v1/models (no inference) against one
# codepilot at a time, configurations alternating round by round in one run; medians.
#   off                      auth, quotas' bookkeeping and audit all off
#   sqlite | postgresql      auth + RBAC with an API key (issue 4), audit off
#   STORE-batched|STORE-sync auth + RBAC + a tenant quota + the audit trail (issue 5)
#   PG_URL=postgresql://... CONFIGS="off sqlite sqlite-batched" scripts/bench_auth.sh
# make bench-auth and make bench-audit start a throw-away PostgreSQL and pick the configs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
PG_URL=${PG_URL:-}
# RATE=N: every connection waits between its requests so that all of them together send about
# N requests/s (wrk's delay()): latency at a load below saturation, where it is not queueing.
RATE=${RATE:-}
MODEL=$BUILD/bench-models/auth-tiny.gguf  # /v1/models never touches the model: the smallest will do

cmake -S . -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target codepilot >/dev/null
[ -f "$MODEL" ] || "$BUILD/src/codepilot" model synth "$MODEL" --vocab qwen2-coder --layers 1 --embd 64 --heads 2 \
    --kv-heads 1 --ff 128 >/dev/null
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt install wrk)" >&2; exit 1; }
mkdir -p bench/results
raw="bench/results/auth-$(date -u +%Y%m%dT%H%M%SZ).txt"
port=18800
configs=${CONFIGS:-"off sqlite postgresql"}
[ -z "$PG_URL" ] && configs=$(echo "$configs" | tr ' ' '\n' | grep -v postgresql | tr '\n' ' ')

# Prepares a store with a developer key and prints the key.
prepare() {  # config dir
    local url="" durability=off
    case "$1" in
        sqlite*) url="sqlite://$2/codepilot.db" ;;
        postgresql*) url="$PG_URL" ;;
        off) echo ""; return ;;
    esac
    case "$1" in *-batched) durability=batched ;; *-sync) durability=sync ;; esac
    printf '[store]\nurl = "%s"\n[audit]\ndurability = "%s"\n' "$url" "$durability" > "$2/bench.toml"
    local cli=("$BUILD/src/codepilot")
    "${cli[@]}" tenant create bench --config "$2/bench.toml" >/dev/null 2>&1 || true
    "${cli[@]}" user create dev --tenant bench --role developer --config "$2/bench.toml" >/dev/null
    # With the audit trail on, a generous tenant quota so that admission runs too.
    [ "$durability" != off ] && "${cli[@]}" quota set --tenant bench --rpm 1000000000 --concurrency 100000 \
        --config "$2/bench.toml" >/dev/null
    "${cli[@]}" key create --tenant bench --user dev --scopes completion,chat --config "$2/bench.toml" | tail -n 1
}

cpu_ticks() {  # user+system clock ticks the process has used
    awk '{print $14 + $15}' "/proc/$1/stat"
}

ms() {  # wrk latency text (e.g. 1.23ms, 850.00us, 1.02s) → milliseconds
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

: > "$raw"
for round in $(seq 1 "$ROUNDS"); do
    for config in $configs; do
        dir=$(mktemp -d)
        key=$(prepare "$config" "$dir")
        auth_flag=(--auth on)
        [ "$config" = off ] && auth_flag=(--auth off --config "$root/scripts/bench-audit-off.toml")
        config_flag=()
        [ "$config" != off ] && config_flag=(--config "$dir/bench.toml")
        "$BUILD/src/codepilot" serve "${config_flag[@]}" "${auth_flag[@]}" --model "$MODEL" --port $port --threads 1 \
            --parallel 1 --ctx 256 --log-level warn --data-dir "$dir" >/dev/null &
        pid=$!
        wait_healthy $port "$config"
        header=()
        [ -n "$key" ] && header=(-H "Authorization: Bearer $key")
        status=$(curl -s -o /dev/null -w '%{http_code}' "${header[@]}" "http://127.0.0.1:$port/v1/models")
        [ "$status" = 200 ] || { echo "bench: $config answered $status" >&2; kill $pid; exit 1; }
        ticks_before=$(cpu_ticks $pid)
        pace=()
        if [ -n "$RATE" ]; then
            printf 'function delay() return %d end\n' $((CONNECTIONS * 1000 / RATE)) > "$BUILD/bench-pace.lua"
            pace=(-s "$BUILD/bench-pace.lua")
        fi
        out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${pace[@]}" "${header[@]}" \
            "http://127.0.0.1:$port/v1/models")
        ticks=$(( $(cpu_ticks $pid) - ticks_before ))
        kill -TERM $pid; wait $pid 2>/dev/null || true
        rm -rf "$dir"
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        p50=$(ms "$(echo "$out" | awk '$1=="50%" {print $2}')")
        p99=$(ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
        errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
        requests=$(echo "$out" | awk '/requests in/ {print $1}')
        # Server CPU per request: steadier than throughput on a shared machine.
        cpu_us=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
        echo "round=$round config=$config rps=$rps p50_ms=$p50 p99_ms=$p99 cpu_us_per_req=$cpu_us non2xx=${errors:-0}" | tee -a "$raw"
    done
done

echo
echo "medians over $ROUNDS rounds ($CONNECTIONS connections, ${DURATION}s each, wrk -t$WRK_THREADS); raw: $raw"
python3 - "$raw" <<'PY'
import statistics, sys
rows = [dict(kv.split("=") for kv in line.split()) for line in open(sys.argv[1]) if line.strip()]
by = {}
for r in rows:
    by.setdefault(r["config"], []).append(r)
keys = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")
med = {c: {k: statistics.median(float(r[k]) for r in rs) for k in keys} for c, rs in by.items()}
base = med["off"]
print("| auth | requests/s | p50 ms | p99 ms | server CPU µs/request | throughput vs off | p99 overhead | CPU overhead |")
print("|---|---|---|---|---|---|---|---|")
for c, m in med.items():
    print(f"| {c} | {m['rps']:.0f} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {m['cpu_us_per_req']:.2f} | "
          f"{m['rps'] / base['rps']:.2f}x | {m['p99_ms'] - base['p99_ms']:+.3f} ms | {m['cpu_us_per_req'] - base['cpu_us_per_req']:+.2f} µs |")
PY
