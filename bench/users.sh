#!/usr/bin/env bash
# Load benchmark of the users API: builds a release `donkies`, runs it on a fresh SQLite file
# and then on a fresh PostgreSQL database, and measures with wrk:
#   GET /healthz and GET /v1/user (valid token) at 64 connections: req/s, p99, ratio;
#   POST /v1/auth/login at 8 connections (Argon2id-bound): req/s;
#   resident memory of `serve` idle and under load.
#
#   bash bench/users.sh
#   BENCH_POSTGRES_URL=postgres://USER@HOST:5432/postgres bash bench/users.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release/donkies"
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
USERS=50
PASSWORD='bench password 1'
SECRET_KEY='bench-secret-key-0123456789abcdef0123456789'
DURATION=10s

WORK="$(mktemp -d "${TMPDIR:-/tmp}/donkies-bench.XXXXXX")"
SERVER_PID=""
PG_DB=""

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        local status=0
        wait "$SERVER_PID" || status=$?
        [[ $status -eq 0 ]] || log "server $SERVER_PID exited with status $status"
    fi
    SERVER_PID=""
}

cleanup() {
    local rc=$?
    stop_server
    if [[ -n "$PG_DB" ]]; then
        psql "$PG_ADMIN_URL" -qAt -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
            || log "could not drop database $PG_DB"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------- build, tools
log "building release binary"
(cd "$ROOT" && cargo build --release -p donkies-server)
[[ -x "$BIN" ]] || die "no binary at $BIN"

if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk"
    if ! apt-get install -y wrk >/dev/null 2>&1; then
        apt-get update >/dev/null
        apt-get install -y wrk >/dev/null
    fi
fi
command -v wrk >/dev/null 2>&1 || die "wrk is not available"
command -v curl >/dev/null 2>&1 || die "curl is not available"

# ---------------------------------------------------------------------------- helpers
# Value (kB) of a field of /proc/PID/status, printed in MiB with one decimal.
proc_mib() {
    awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# start_server NAME DATA_DIR DATABASE_URL  -> sets SERVER_PID and BASE
start_server() {
    local name=$1 data_dir=$2 db_url=$3 logf="$2/server.log"
    DONKIES_DATA_DIR="$data_dir" \
    DATABASE_URL="$db_url" \
    DONKIES_SECRET_KEY="$SECRET_KEY" \
    DONKIES_LOGIN_RATE_PER_MINUTE=100000000 \
        "$BIN" serve --listen 127.0.0.1:0 >"$logf" 2>&1 &
    SERVER_PID=$!
    BASE=""
    local i addr
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logf" >&2; die "$name: server exited during start-up"; }
        addr="$(sed 's/\x1b\[[0-9;]*m//g' "$logf" | grep -o 'donkies listening on http://[0-9.:]*' | head -n1 | sed 's/.*http:\/\///')" || true
        if [[ -n "$addr" ]] && curl -fsS -o /dev/null "http://$addr/healthz" 2>/dev/null; then
            BASE="http://$addr"
            return 0
        fi
        sleep 0.1
    done
    cat "$logf" >&2
    die "$name: server did not answer /healthz within 30 s"
}

signup_one() { # BASE I
    local code
    code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$1/v1/auth/signup" \
        -H 'Content-Type: application/json' \
        -d "{\"email\":\"bench$2@example.com\",\"password\":\"$PASSWORD\",\"first_name\":\"Bench\",\"last_name\":\"User$2\"}")"
    [[ "$code" == 204 ]] || { echo "signup bench$2: HTTP $code" >&2; return 1; }
}
export -f signup_one
export PASSWORD

# run_wrk OUTFILE wrk-args...  ; fails on socket errors count > 0 only as a warning
run_wrk() {
    local out=$1
    shift
    wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed: $*"; }
}
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_p99() { awk '$1 == "99%" { print $2 }' "$1"; }
wrk_non2xx() { awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); n = $2 } END { print n + 0 }' "$1"; }
wrk_errors() { grep -E 'Socket errors' "$1" || true; }

check_wrk() { # NAME LABEL OUTFILE
    local n
    n="$(wrk_non2xx "$3")"
    if [[ "$n" != 0 ]]; then
        log "WARNING $1 $2: $n non-2xx responses"
        SURPRISES+=("$1 $2: $n non-2xx responses")
    fi
    local e
    e="$(wrk_errors "$3")"
    if [[ -n "$e" ]]; then
        log "WARNING $1 $2: $e"
        SURPRISES+=("$1 $2: $e")
    fi
}

cat >"$WORK/login.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"bench1@example.com","password":"$PASSWORD"}'
EOF

declare -a ROWS=()
declare -a SURPRISES=()

# bench_backend NAME DATA_DIR DATABASE_URL
bench_backend() {
    local name=$1 data_dir=$2 db_url=$3 out="$2/wrk"
    mkdir -p "$out"
    log "$name: starting server"
    start_server "$name" "$data_dir" "$db_url"
    log "$name: listening on $BASE (pid $SERVER_PID)"
    sleep 1
    local idle_rss
    idle_rss="$(proc_mib "$SERVER_PID" VmRSS)"

    log "$name: signing up $USERS users"
    seq 1 "$USERS" | xargs -P 4 -I{} bash -c 'signup_one "$0" {}' "$BASE" \
        || die "$name: sign-up failed"
    local token
    token="$(curl -fsS -X POST "$BASE/v1/auth/login" -H 'Content-Type: application/json' \
        -d "{\"email\":\"bench1@example.com\",\"password\":\"$PASSWORD\"}" \
        | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')"
    [[ -n "$token" ]] || die "$name: login returned no token"
    curl -fsS -o /dev/null -H "Authorization: Token $token" "$BASE/v1/user" \
        || die "$name: GET /v1/user with the token failed"

    log "$name: warming up"
    run_wrk "$out/warm-healthz" -t2 -c16 -d2s "$BASE/healthz"
    run_wrk "$out/warm-user" -t2 -c16 -d2s -H "Authorization: Token $token" "$BASE/v1/user"

    log "$name: GET /healthz"
    run_wrk "$out/healthz" -t2 -c64 -d"$DURATION" --latency "$BASE/healthz"
    check_wrk "$name" "GET /healthz" "$out/healthz"
    log "$name: GET /v1/user"
    run_wrk "$out/user" -t2 -c64 -d"$DURATION" --latency \
        -H "Authorization: Token $token" "$BASE/v1/user"
    check_wrk "$name" "GET /v1/user" "$out/user"
    log "$name: POST /v1/auth/login"
    run_wrk "$out/login" -t2 -c8 -d"$DURATION" --latency -s "$WORK/login.lua" "$BASE/v1/auth/login"
    check_wrk "$name" "POST /v1/auth/login" "$out/login"

    local loaded_rss peak_rss
    loaded_rss="$(proc_mib "$SERVER_PID" VmRSS)"
    peak_rss="$(proc_mib "$SERVER_PID" VmHWM)"

    if grep -qiE '\b(ERROR|panicked)\b' "$data_dir/server.log"; then
        local n
        n="$(grep -ciE '\b(ERROR|panicked)\b' "$data_dir/server.log")"
        SURPRISES+=("$name: $n ERROR/panic lines in the server log, first: $(grep -iE '\b(ERROR|panicked)\b' "$data_dir/server.log" | head -n1 | cut -c1-200)")
    fi

    log "$name: stopping server"
    stop_server

    local h_rps h_p99 u_rps u_p99 l_rps ratio
    h_rps="$(wrk_rps "$out/healthz")"
    h_p99="$(wrk_p99 "$out/healthz")"
    u_rps="$(wrk_rps "$out/user")"
    u_p99="$(wrk_p99 "$out/user")"
    l_rps="$(wrk_rps "$out/login")"
    ratio="$(awk -v u="$u_rps" -v h="$h_rps" 'BEGIN { if (h > 0) printf "%.1f%%", 100 * u / h; else print "n/a" }')"
    ROWS+=("$(printf '%-10s %12s %9s %12s %9s %8s %10s %9s %9s %9s' \
        "$name" "$h_rps" "$h_p99" "$u_rps" "$u_p99" "$ratio" "$l_rps" \
        "$idle_rss" "$loaded_rss" "$peak_rss")")
}

# ---------------------------------------------------------------------------- SQLite
mkdir -p "$WORK/sqlite"
bench_backend sqlite "$WORK/sqlite" "sqlite://$WORK/sqlite/donkies.db"

# ---------------------------------------------------------------------------- PostgreSQL
PG_SKIPPED=""
if ! command -v psql >/dev/null 2>&1; then
    PG_SKIPPED="psql is not installed"
elif ! psql "$PG_ADMIN_URL" -qAt -c 'SELECT 1' >/dev/null 2>&1; then
    PG_SKIPPED="cannot connect to $PG_ADMIN_URL (set BENCH_POSTGRES_URL)"
fi
if [[ -z "$PG_SKIPPED" ]]; then
    PG_DB="donkies_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    psql "$PG_ADMIN_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
    # Same server and credentials as the admin URL, the fresh database as the path.
    PG_URL="$(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
        "$PG_ADMIN_URL" "$PG_DB")"
    mkdir -p "$WORK/postgres"
    bench_backend postgres "$WORK/postgres" "$PG_URL"
else
    log "skipping PostgreSQL: $PG_SKIPPED"
fi

# ---------------------------------------------------------------------------- report
echo
echo "donkies users benchmark  (nproc: $(nproc); wrk -t2 -c64 -d$DURATION for GETs, -c8 for login)"
printf '%-10s %12s %9s %12s %9s %8s %10s %9s %9s %9s\n' \
    backend "healthz r/s" "p99" "user r/s" "p99" "user/hz" "login r/s" "idle MiB" "load MiB" "peak MiB"
for row in "${ROWS[@]}"; do echo "$row"; done
[[ -z "$PG_SKIPPED" ]] || echo "postgres   skipped: $PG_SKIPPED"
echo "goal: user/healthz >= 60%; load MiB = VmRSS right after load, peak MiB = VmHWM"
if ((${#SURPRISES[@]})); then
    echo "warnings:"
    for s in "${SURPRISES[@]}"; do echo "  - $s"; done
fi
