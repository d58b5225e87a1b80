#!/usr/bin/env bash
# Throw-away PostgreSQL 15 and OpenLDAP slapd for the test suite, on free loopback ports, and a
# throw-away CA for the TLS tests (LDAP, JWKS, Redis).
#   scripts/test_services.sh start BUILD_DIR   starts both, seeds the directory, writes BUILD_DIR/test-services.env
#   scripts/test_services.sh stop  BUILD_DIR   stops both and removes their files
# The tests read the URLs from that env file (or from the same variables in the environment).
set -euo pipefail
cmd=${1:?start|stop}
build=$(realpath -m "${2:-build}")
env_file="$build/test-services.env"
root=/tmp/codepilot-test-services-$(echo "$build" | md5sum | cut -c1-8)
here=$(cd "$(dirname "$0")" && pwd)
pg_bin=/usr/lib/postgresql/15/bin

as_postgres() {  # initdb and postgres refuse to run as root
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop() {
    if [ -d "$root/pg" ]; then as_postgres "$pg_bin/pg_ctl" -D "$root/pg" -m immediate stop >/dev/null 2>&1 || true; fi
    if [ -f "$root/slapd/slapd.pid" ]; then kill "$(cat "$root/slapd/slapd.pid")" 2>/dev/null || true; sleep 0.2; fi
    rm -rf "$root" "$env_file"
}

start_postgres() {
    local port=$1
    mkdir -p "$root/pg" "$root/pgsock"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$root/pg" "$root/pgsock" && chmod 755 "$root"
    as_postgres "$pg_bin/initdb" -D "$root/pg" -U postgres --auth=trust -E UTF8 >"$root/initdb.log" 2>&1
    as_postgres "$pg_bin/pg_ctl" -D "$root/pg" -l "$root/pg/server.log" -w -t 60 \
        -o "-p $port -k $root/pgsock -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    psql -h 127.0.0.1 -p "$port" -U postgres -q -c "CREATE ROLE codepilot LOGIN SUPERUSER PASSWORD 'codepilot'" >/dev/null
}

# A throw-away CA with a server certificate for 127.0.0.1 and localhost, a client certificate
# (Redis mTLS), a certificate of that CA for another name, and an unrelated CA: the TLS tests of
# LDAP, JWKS and Redis use them.
make_certificates() {
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Codepilot Test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.pem" >/dev/null 2>&1
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Some Other CA" \
        -keyout "$dir/other-ca.key" -out "$dir/other-ca.pem" >/dev/null 2>&1
    issue() { # name subject extensions
        openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$dir/$1.key" -out "$dir/$1.csr" >/dev/null 2>&1
        printf "$3" >"$dir/$1.cnf"
        openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 2 \
            -extfile "$dir/$1.cnf" -out "$dir/$1.pem" >/dev/null 2>&1
    }
    issue server "/CN=127.0.0.1" 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n'
    issue client "/CN=codepilot" 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n'
    issue elsewhere "/CN=elsewhere.test" 'subjectAltName=DNS:elsewhere.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n'
    chmod 600 "$dir"/*.key
}

start_slapd() {
    local port=$1 tls_port=$2 dir="$root/slapd"
    mkdir -p "$dir/db"
    sed "s|@DIR@|$dir|g; s|@TLS@|$root/tls|g" "$here/../tests/services/slapd.conf" >"$dir/slapd.conf"
    /usr/sbin/slapd -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/" >"$dir/slapd.log" 2>&1
    for _ in $(seq 50); do
        ldapsearch -x -H "ldap://127.0.0.1:$port" -b "" -s base >/dev/null 2>&1 && break
        sleep 0.1
    done
    ldapadd -x -H "ldap://127.0.0.1:$port" -D "cn=admin,dc=codepilot,dc=test" -w adminpw \
        -f "$here/../tests/services/directory.ldif" >"$dir/seed.log"
}

case "$cmd" in
start)
    stop
    mkdir -p "$root" "$build"
    pg_port=$(free_port)
    ldap_port=$(free_port)
    ldaps_port=$(free_port)
    make_certificates "$root/tls"
    start_postgres "$pg_port"
    start_slapd "$ldap_port" "$ldaps_port"
    cat >"$env_file" <<EOT
CODEPILOT_TEST_PG_URL=postgresql://codepilot:codepilot@127.0.0.1:$pg_port/postgres
CODEPILOT_TEST_LDAP_URL=ldap://127.0.0.1:$ldap_port
CODEPILOT_TEST_LDAPS_URL=ldaps://127.0.0.1:$ldaps_port
CODEPILOT_TEST_LDAP_CA=$root/tls/ca.pem
CODEPILOT_TEST_TLS_DIR=$root/tls
CODEPILOT_TEST_SLAPD_PID_FILE=$root/slapd/slapd.pid
EOT
    echo "test services: postgresql on $pg_port, slapd on $ldap_port (ldaps $ldaps_port)"
    ;;
stop) stop ;;
*) echo "usage: $0 start|stop BUILD_DIR" >&2; exit 2 ;;
esac
