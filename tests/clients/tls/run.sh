#!/usr/bin/env bash
# Real clients against `codepilot serve` over TLS (issue 10): curl, the official `openai` npm
# SDK and `tabby-agent`, with a throw-away CA, a server certificate and client certificates.
#
#   tests/clients/tls/run.sh BUILD_DIR     (BUILD_DIR holds src/codepilot)
#
# Exit 0: every check passed; 1: a check failed; 77: skipped (node/npm/curl/openssl missing or
# the npm registry unreachable), with the reason printed. The npm packages are installed with
# `npm ci` from package-lock.json into BUILD_DIR/clients-tls, never into the source tree.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "${1:-$SRC/../../../build}" 2>/dev/null && pwd) || { echo "FAIL: no build directory '${1:-}'"; exit 1; }
BIN=$BUILD/src/codepilot
NPM_DIR=$BUILD/clients-tls

skip() { echo "SKIP: $*"; exit 77; }
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

[ -x "$BIN" ] || { echo "FAIL: $BIN is not built"; exit 1; }
for tool in node npm curl openssl; do
    command -v "$tool" >/dev/null || skip "$tool is not installed"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || skip "node $(node --version) is too old (the pinned openai SDK needs node 20)"

# --- npm packages, pinned by package-lock.json; reinstalled only when the lock file changes ---
mkdir -p "$NPM_DIR"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC"/*.mjs "$NPM_DIR"/
lock_sum=$(sha256sum "$SRC/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$NPM_DIR/.installed" 2>/dev/null)" != "$lock_sum" ] || [ ! -d "$NPM_DIR/node_modules" ]; then
    registry=$(npm config get registry)
    if timeout 30 npm ping --fetch-retries=0 --fetch-timeout=15000 >/dev/null 2>&1; then
        echo "npm ci into $NPM_DIR (from $registry) ..."
        if ! (cd "$NPM_DIR" && timeout 240 npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) >"$NPM_DIR/npm-ci.log" 2>&1; then
            cat "$NPM_DIR/npm-ci.log"
            echo "FAIL: npm ci failed although the registry $registry answers (see above)"
            exit 1
        fi
    else
        # No registry: the npm cache may still hold every pinned tarball.
        echo "npm registry $registry unreachable: trying npm ci --offline from the npm cache ..."
        if ! (cd "$NPM_DIR" && timeout 120 npm ci --offline --no-audit --no-fund --ignore-scripts --loglevel=error) >"$NPM_DIR/npm-ci.log" 2>&1; then
            tail -n 5 "$NPM_DIR/npm-ci.log"
            skip "npm ci could not run: the npm registry ($registry) is unreachable (no network?) and the npm cache lacks the pinned packages"
        fi
    fi
    echo "$lock_sum" >"$NPM_DIR/.installed"
fi
echo "clients: openai $(node -p "require('$NPM_DIR/node_modules/openai/package.json').version")," \
    "tabby-agent $(node -p "require('$NPM_DIR/node_modules/tabby-agent/package.json').version")," \
    "undici $(node -p "require('$NPM_DIR/node_modules/undici/package.json').version"), node $(node --version), $(curl --version | head -1 | cut -d' ' -f1-2)"

# --- a throw-away PKI: CA, server certificate (IP:127.0.0.1, DNS:localhost), two client certificates ---
TMP=$(mktemp -d "${TMPDIR:-/tmp}/codepilot-tls-clients.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
cd "$TMP" # tabby-agent's log rotation writes audit.json into its working directory
PKI=$TMP/pki
mkdir -p "$PKI" && chmod 700 "$PKI"

ossl() { openssl "$@" 2>>"$PKI/openssl.log" || { cat "$PKI/openssl.log"; echo "FAIL: openssl $1"; exit 1; }; }
ec_key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; chmod 600 "$1"; }
ec_key "$PKI/ca.key"
ossl req -x509 -new -key "$PKI/ca.key" -out "$PKI/ca.pem" -days 2 -subj "/CN=Codepilot throw-away test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
issue() { # name subject extensions
    ec_key "$PKI/$1.key"
    ossl req -new -key "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2"
    printf '%b' "$3" >"$PKI/$1.ext"
    ossl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
        -days 2 -extfile "$PKI/$1.ext" -out "$PKI/$1.pem"
}
issue server "/CN=localhost" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
issue client "/O=Codepilot tests/CN=tls-bot" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
issue stranger "/O=Codepilot tests/CN=stranger" \
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"

# --- the server: auth on, TLS with optional client certificates, a free port ---
DATA=$TMP/data
CONFIG=$TMP/codepilot.toml
cat >"$CONFIG" <<EOF
data_dir = "$DATA"

[server]
host = "127.0.0.1"
port = 0
io_threads = 1
worker_threads = 2

[server.tls]
cert_file = "$PKI/server.pem"
key_file = "$PKI/server.key"
client_ca_file = "$PKI/ca.pem"
client_auth = "optional"

[model]
threads = 2
parallel = 2
ctx = 2048

[completion]
# Short IDE completions: tabby-agent drops a line that ends in a repetition, and the demo
# model's random weights repeat themselves after a few tokens.
max_tokens = 8

[auth]
enabled = true
EOF
"$BIN" serve --config "$CONFIG" --port-file "$TMP/port" --log-level warn >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
PORT=
for _ in $(seq 600); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    PORT=$(cat "$TMP/port" 2>/dev/null)
    if [ -n "$PORT" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.pem" "https://127.0.0.1:$PORT/ready")" = 200 ]; then
        break
    fi
    PORT=
    sleep 0.1
done
if [ -z "$PORT" ]; then
    cat "$TMP/server.log"
    echo "FAIL: codepilot serve did not become ready over https within 60 s"
    exit 1
fi
OWNER_KEY=$(cat "$DATA/bootstrap-owner.key")
BASE=https://127.0.0.1:$PORT
echo "server ready at $BASE (pid $SERVER_PID)"

cli() { "$BIN" "$@" --config "$CONFIG"; }
# curl_status OUTFILE ARGS...: the HTTP status, or "curl-exit-N" when no answer came
curl_status() {
    local out=$1 code rc
    shift
    code=$(curl -sS -o "$out" -w '%{http_code}' --max-time 30 "$@" 2>"$out.err")
    rc=$?
    if [ $rc -ne 0 ]; then echo "curl-exit-$rc"; else echo "$code"; fi
}
CA=(--cacert "$PKI/ca.pem")
CERT=(--cert "$PKI/client.pem" --key "$PKI/client.key")
COMPLETION='{"prompt":"def fibonacci(n):","max_tokens":8}'

echo "== 1. curl over https"
s=$(curl_status "$TMP/b1" "${CA[@]}" -H "Authorization: Bearer $OWNER_KEY" "$BASE/v1/models")
if [ "$s" = 200 ] && grep -q '"object":"list"' "$TMP/b1"; then pass "curl --cacert GET $BASE/v1/models with the owner key: 200 $(head -c 160 "$TMP/b1")"
else fail "curl --cacert GET /v1/models: expected 200 with a model list, got $s $(cat "$TMP/b1" "$TMP/b1.err" 2>/dev/null | head -c 400)"; fi
s=$(curl_status "$TMP/b1b" "${CA[@]}" -H "Authorization: Bearer $OWNER_KEY" "https://localhost:$PORT/v1/models")
if [ "$s" = 200 ]; then pass "curl --cacert via the DNS name https://localhost:$PORT: 200"
else fail "curl via https://localhost:$PORT: expected 200, got $s $(cat "$TMP/b1b.err" 2>/dev/null)"; fi
s=$(curl_status "$TMP/b2" "http://127.0.0.1:$PORT/v1/models")
if [ "$s" = 400 ] && grep -qi 'https' "$TMP/b2"; then pass "plain http:// to the TLS port: 400 \"$(head -c 200 "$TMP/b2")\""
else fail "plain http:// to the TLS port: expected 400 naming https, got $s $(cat "$TMP/b2" "$TMP/b2.err" 2>/dev/null | head -c 400)"; fi
s=$(unset CURL_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR; curl_status "$TMP/b3" -H "Authorization: Bearer $OWNER_KEY" "$BASE/v1/models")
if [ "$s" = curl-exit-60 ]; then pass "curl without --cacert refuses the certificate (exit 60: $(head -n 1 "$TMP/b3.err"))"
else fail "curl without --cacert: expected a verification failure (exit 60), got $s $(cat "$TMP/b3.err" 2>/dev/null)"; fi
s=$(curl_status "$TMP/b4" "${CA[@]}" --tls-max 1.2 "$BASE/ready")
if [[ "$s" = curl-exit-* ]]; then pass "TLS 1.2 at most is refused (min_version 1.3): $s"
else fail "curl --tls-max 1.2: expected a failed handshake, got HTTP $s"; fi

echo "== 2. curl with a client certificate"
s=$(curl_status "$TMP/c1" "${CA[@]}" "${CERT[@]}" -H 'Content-Type: application/json' -d "$COMPLETION" "$BASE/v1/completions")
if [ "$s" = 401 ]; then pass "unbound client certificate, no Authorization: 401 $(head -c 200 "$TMP/c1")"
else fail "unbound client certificate: expected 401, got $s $(cat "$TMP/c1" "$TMP/c1.err" 2>/dev/null | head -c 400)"; fi
if out=$(cli user create tls-bot --tenant default --service 2>&1) &&
    out2=$(cli cert bind --tenant default --user tls-bot --cert-file "$PKI/client.pem" --scopes completion,chat --name tls-test 2>&1); then
    pass "codepilot user create tls-bot --service; codepilot cert bind --cert-file client.pem: ${out2//$'\n'/ }"
else
    fail "codepilot user create / cert bind: ${out:-} ${out2:-}"
fi
s=$(curl_status "$TMP/c2" "${CA[@]}" "${CERT[@]}" -H 'Content-Type: application/json' -d "$COMPLETION" "$BASE/v1/completions")
if [ "$s" = 200 ] && grep -q '"text_completion"' "$TMP/c2"; then pass "bound client certificate, no Authorization: POST /v1/completions 200 $(head -c 200 "$TMP/c2")"
else fail "bound client certificate: expected 200 from POST /v1/completions, got $s $(cat "$TMP/c2" "$TMP/c2.err" 2>/dev/null | head -c 400)"; fi
s=$(curl_status "$TMP/c3" "${CA[@]}" --cert "$PKI/stranger.pem" --key "$PKI/stranger.key" -H 'Content-Type: application/json' -d "$COMPLETION" "$BASE/v1/completions")
if [ "$s" = 401 ]; then pass "another certificate of the same CA, never bound: still 401"
else fail "unbound second certificate: expected 401, got $s $(head -c 400 "$TMP/c3")"; fi
s=$(curl_status "$TMP/c4" "${CA[@]}" -H 'Content-Type: application/json' -d "$COMPLETION" "$BASE/v1/completions")
if [ "$s" = 401 ]; then pass "no certificate and no Authorization: 401 (client_auth = optional)"
else fail "no credentials at all: expected 401, got $s $(head -c 400 "$TMP/c4")"; fi

echo "== 3. openai SDK (NODE_EXTRA_CA_CERTS)"
if KEY=$(cli key create --tenant default --user tls-bot --scopes completion,chat --name openai-sdk 2>&1 | tail -1) && [ -n "$KEY" ]; then
    pass "codepilot key create --tenant default --user tls-bot: ${KEY:0:12}..."
else
    fail "codepilot key create: $KEY"; KEY=$OWNER_KEY
fi
export CP_BASE_URL=$BASE CP_API_KEY=$KEY CP_PKI=$PKI
NODE_EXTRA_CA_CERTS=$PKI/ca.pem timeout 120 node "$NPM_DIR/openai_check.mjs" || failures=$((failures + 1))
# The same SDK without the test CA: the server's certificate must not be trusted.
env -u NODE_EXTRA_CA_CERTS timeout 60 node "$NPM_DIR/openai_check.mjs" --untrusted || failures=$((failures + 1))

echo "== 4. tabby-agent over https (NODE_EXTRA_CA_CERTS)"
mkdir -p "$TMP/home"
HOME=$TMP/home NODE_EXTRA_CA_CERTS=$PKI/ca.pem CP_CA=$PKI/ca.pem CP_ENDPOINT=$BASE CP_TOKEN=$KEY \
    CP_AGENT="$NPM_DIR/node_modules/tabby-agent/dist/cli.js" timeout 120 node "$NPM_DIR/tabby_check.mjs" ||
    failures=$((failures + 1))

if ! kill -0 "$SERVER_PID" 2>/dev/null; then fail "codepilot serve exited during the checks"; fi
if [ "$failures" -ne 0 ]; then
    echo "--- server log (tail)"
    tail -n 40 "$TMP/server.log"
    echo "RESULT: FAILED ($failures failing check(s) or client script(s))"
    exit 1
fi
echo "RESULT: all checks passed (${SECONDS} s)"
