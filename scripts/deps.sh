#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the benchmarks need.
# Idempotent: only missing packages are installed.
set -euo pipefail
packages=(
    build-essential cmake ccache git pkg-config nodejs npm
    libboost1.81-dev libssl-dev nlohmann-json3-dev libspdlog-dev libcli11-dev libtomlplusplus-dev
    libgtest-dev libgmock-dev libbenchmark-dev
    libsqlite3-dev libpq-dev libargon2-dev libldap-dev libhiredis-dev libre2-dev redis-server
    postgresql slapd ldap-utils openssl prometheus
    curl wrk python3
    clang-14 libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from nodejs itself on machines with a non-Debian node; accept any working npm.
if command -v npm >/dev/null 2>&1; then
    missing=("${missing[@]/npm}")
    missing=("${missing[@]/nodejs}")
fi
filtered=()
for p in "${missing[@]}"; do [ -n "$p" ] && filtered+=("$p"); done
[ ${#filtered[@]} -eq 0 ] && exit 0
echo "deps: installing ${filtered[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
