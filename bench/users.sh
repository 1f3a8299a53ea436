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

USERS=50
PASSWORD='bench password 1'
export PASSWORD

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cat >"$WORK/login.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"bench1@example.com","password":"$PASSWORD"}'
EOF

declare -a ROWS=()

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
    token="$(login "$BASE" bench1@example.com "$PASSWORD")"
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

    check_log "$name" "$data_dir/server.log"

    log "$name: stopping server"
    stop_server

    local h_rps h_p99 u_rps u_p99 l_rps ratio
    h_rps="$(wrk_rps "$out/healthz")"
    h_p99="$(wrk_p99 "$out/healthz")"
    u_rps="$(wrk_rps "$out/user")"
    u_p99="$(wrk_p99 "$out/user")"
    l_rps="$(wrk_rps "$out/login")"
    ratio="$(ratio_pct "$u_rps" "$h_rps")"
    ROWS+=("$(printf '%-10s %12s %9s %12s %9s %8s %10s %9s %9s %9s' \
        "$name" "$h_rps" "$h_p99" "$u_rps" "$u_p99" "$ratio" "$l_rps" \
        "$idle_rss" "$loaded_rss" "$peak_rss")")
}

# ---------------------------------------------------------------------------- SQLite
mkdir -p "$WORK/sqlite"
bench_backend sqlite "$WORK/sqlite" "sqlite://$WORK/sqlite/donkies.db"

# ---------------------------------------------------------------------------- PostgreSQL
pg_check
if [[ -z "$PG_SKIPPED" ]]; then
    pg_fresh_db
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
print_surprises
