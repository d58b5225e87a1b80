#!/usr/bin/env bash
# TLS termination cost: codepilot's own TLS 1.3 vs nginx (Debian) terminating TLS in front of a
# plain codepilot, same machine, same certificate, one at a time, rounds alternating; medians.
#   health      GET /health over keep-alive connections (the TLS record layer, no work behind it)
#   completion  POST /v1/completions, 4 tokens of a 1-layer model (a short completion)
#   handshake   GET /health with "Connection: close": every request a full TLS 1.3 handshake
#   ROUNDS=3 DURATION=10 CONNECTIONS=32 scripts/bench_tls.sh     (make bench-tls)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/bench_common.sh
source scripts/bench_common.sh
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
WORKLOADS=${WORKLOADS:-"health completion handshake"}
MODEL=$BUILD/bench-models/auth-tiny.gguf

cmake -S . -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target codepilot >/dev/null
[ -f "$MODEL" ] || "$BUILD/src/codepilot" model synth "$MODEL" --vocab qwen2-coder --layers 1 --embd 64 --heads 2 \
    --kv-heads 1 --ff 128 >/dev/null
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt install wrk)" >&2; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "bench: nginx is missing (apt install nginx)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
mkdir -p bench/results
raw="bench/results/tls-$(date -u +%Y%m%dT%H%M%SZ).txt"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tls_port=18900 plain_port=18901

# One certificate for both: an EC P-256 leaf for 127.0.0.1 from a throw-away CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=Bench CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$work/server.key" -out "$work/server.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
    -extfile "$work/ext.cnf" -out "$work/server.pem" >/dev/null 2>&1
chmod 600 "$work/server.key"
printf '[server.tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$work/server.pem" "$work/server.key" >"$work/tls.toml"
cat >"$work/nginx.conf" <<NGINX
user root;
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx-body;
    proxy_temp_path $work/nginx-proxy;
    upstream codepilot { server 127.0.0.1:$plain_port; keepalive 64; }
    server {
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $work/server.pem;
        ssl_certificate_key $work/server.key;
        ssl_protocols TLSv1.3;
        location / {
            proxy_pass http://codepilot;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
NGINX
cat >"$work/completion.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"prompt":"def add(a, b):","max_tokens":4,"ignore_eos":true}'
wrk.headers["Content-Type"] = "application/json"
LUA

cpu_ticks() {  # user+system ticks of these processes and their children that were waited for
    local sum=0 pid
    for pid in "$@"; do sum=$((sum + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat"))); done
    echo $sum
}
ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
serve() {  # port [extra flags]: starts codepilot, prints its pid
    local port=$1; shift
    "$BUILD/src/codepilot" serve --auth off --config "$root/scripts/bench-audit-off.toml" "$@" --model "$MODEL" \
        --port "$port" --threads 1 --parallel 4 --ctx 1024 --log-level warn --data-dir "$work/data-$port" >/dev/null 2>&1 &
    echo $!
}
wait_tls() {
    for _ in $(seq 1 600); do
        curl -sf --cacert "$work/ca.pem" "https://127.0.0.1:$tls_port/health" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "bench: nothing answers https on $tls_port" >&2; return 1
}

: >"$raw"
for round in $(seq 1 "$ROUNDS"); do
    for terminator in codepilot nginx; do
        pids=()
        if [ $terminator = codepilot ]; then
            # the TLS section goes in a config of its own next to the bench's audit-off settings
            cat "$root/scripts/bench-audit-off.toml" "$work/tls.toml" >"$work/both.toml"
            pids+=("$("$BUILD/src/codepilot" serve --auth off --config "$work/both.toml" --model "$MODEL" \
                --port $tls_port --threads 1 --parallel 4 --ctx 1024 --log-level warn --data-dir "$work/data-tls" \
                >/dev/null 2>&1 & echo $!)")
        else
            pids+=("$(serve $plain_port)")
            wait_healthy $plain_port "plain codepilot"
            mkdir -p "$work/nginx-body" "$work/nginx-proxy"
            "$NGINX" -c "$work/nginx.conf" -g "daemon off;" &
            pids+=($!)
        fi
        wait_tls
        for workload in $WORKLOADS; do
            args=(-t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency)
            url="https://127.0.0.1:$tls_port/health"
            case $workload in
                completion) args+=(-s "$work/completion.lua"); url="https://127.0.0.1:$tls_port/v1/completions" ;;
                handshake) args+=(-H "Connection: close") ;;
            esac
            # nginx's workers are children of its master: count them too
            all=("${pids[@]}")
            for p in "${pids[@]}"; do all+=($(pgrep -P "$p" || true)); done
            before=$(cpu_ticks "${all[@]}")
            out=$(wrk "${args[@]}" "$url")
            ticks=$(( $(cpu_ticks "${all[@]}") - before ))
            rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
            p50=$(ms "$(echo "$out" | awk '$1=="50%" {print $2}')")
            p99=$(ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
            requests=$(echo "$out" | awk '/requests in/ {print $1}')
            errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
            cpu_us=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
            echo "round=$round terminator=$terminator workload=$workload rps=$rps p50_ms=$p50 p99_ms=$p99 cpu_us_per_req=$cpu_us non2xx=${errors:-0}" | tee -a "$raw"
        done
        for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
        for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
        rm -rf "$work"/data-*
    done
done

echo
echo "medians over $ROUNDS rounds ($CONNECTIONS connections, ${DURATION}s each, wrk -t$WRK_THREADS); raw: $raw"
python3 - "$raw" <<'PY'
import statistics, sys
rows = [dict(kv.split("=") for kv in line.split()) for line in open(sys.argv[1]) if line.strip()]
med = {}
for r in rows:
    med.setdefault((r["workload"], r["terminator"]), []).append(r)
keys = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")
m = {k: {f: statistics.median(float(r[f]) for r in v) for f in keys} for k, v in med.items()}
print("| workload | codepilot TLS req/s | nginx TLS req/s | throughput ratio | p99 codepilot | p99 nginx | p99 added | CPU µs/req codepilot | CPU µs/req nginx+codepilot |")
print("|---|---|---|---|---|---|---|---|---|")
for w in dict.fromkeys(k[0] for k in m):
    a, b = m[(w, "codepilot")], m[(w, "nginx")]
    print(f"| {w} | {a['rps']:.0f} | {b['rps']:.0f} | {a['rps'] / b['rps']:.2f}x | {a['p99_ms']:.2f} ms | {b['p99_ms']:.2f} ms | "
          f"{a['p99_ms'] - b['p99_ms']:+.2f} ms | {a['cpu_us_per_req']:.0f} | {b['cpu_us_per_req']:.0f} |")
PY
