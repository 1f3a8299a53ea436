#!/usr/bin/env bash
# Load benchmark of the reads every page of the web client makes: builds a release `donkies`,
# and for a fresh SQLite file and then a fresh PostgreSQL database starts `serve` on its
# embedded defaults, links the simulator's mxbank for one user, and measures with wrk at 64
# connections, 3 turns each (medians):
#   GET /healthz (the yardstick: no database, no session) and GET /v1/user, /v1/user_settings,
#   /v1/settings, /v1/accounts, /v1/members, /v1/stat, /v1/transfers_prepare,
#   /v1/transfers_donkies, /v1/transfers_user, /v1/transfers_debt: req/s and the ratio to /healthz.
# On PostgreSQL it then starts a second `serve` on the same database and measures
# GET /v1/user at 64 connections spread over both processes (32 each, at once), against one.
#
#   bash bench/pages.sh
#   BENCH_POSTGRES_URL=postgres://USER@HOST:5432/postgres bash bench/pages.sh
#   BENCH_PAGES_DURATION=10s bash bench/pages.sh
set -euo pipefail

PASSWORD='bench password 1'
ROUNDS=3
PATHS=(/v1/user /v1/user_settings /v1/settings /v1/accounts /v1/members /v1/stat
    /v1/transfers_prepare /v1/transfers_donkies /v1/transfers_user /v1/transfers_debt)

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DURATION="${BENCH_PAGES_DURATION:-5s}"
need_tool jq

declare -a ROWS=()

# rps_median OUT_DIR NAME -> the median req/s of the turns NAME1..NAME<ROUNDS>.
rps_median() {
    local r values=()
    for ((r = 1; r <= ROUNDS; r++)); do values+=("$(wrk_rps "$1/$2$r")"); done
    median "${values[@]}"
}

# slug PATH -> a file name for it.
slug() { tr -c 'a-z0-9\n' '_' <<<"$1"; }

# bench_backend NAME DATA_DIR DATABASE_URL
bench_backend() {
    local name=$1 data_dir=$2 db_url=$3 out="$2/wrk"
    mkdir -p "$out"
    log "$name: starting server"
    start_server "$name" "$data_dir" "$db_url"
    log "$name: listening on $BASE (pid $SERVER_PID)"
    local token
    token="$(banking_user "$name" "$BASE")"
    log "$name: linking mxbank"
    link_mxbank "$name" "$BASE" "$token"
    local auth="Authorization: Token $token" path
    for path in "${PATHS[@]}"; do
        curl -fsS -o /dev/null -H "$auth" "$BASE$path" || die "$name: GET $path failed"
    done

    log "$name: warming up"
    run_wrk "$out/warm-healthz" -t2 -c16 -d2s "$BASE/healthz"
    run_wrk "$out/warm-user" -t2 -c16 -d2s -H "$auth" "$BASE/v1/user"
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        log "$name: turn $r of $ROUNDS"
        run_wrk "$out/healthz$r" -t2 -c64 -d"$DURATION" "$BASE/healthz"
        check_wrk "$name" "GET /healthz" "$out/healthz$r"
        for path in "${PATHS[@]}"; do
            run_wrk "$out/$(slug "$path")$r" -t2 -c64 -d"$DURATION" -H "$auth" "$BASE$path"
            check_wrk "$name" "GET $path" "$out/$(slug "$path")$r"
        done
    done
    local healthz rps
    healthz="$(rps_median "$out" healthz)"
    ROWS+=("$(printf '%-10s %-24s %12s %8s' "$name" "/healthz" "$healthz" "100%")")
    for path in "${PATHS[@]}"; do
        rps="$(rps_median "$out" "$(slug "$path")")"
        ROWS+=("$(printf '%-10s %-24s %12s %8s' "$name" "$path" "$rps" "$(ratio_pct "$rps" "$healthz")")")
    done

    if [[ "$name" == postgres ]]; then
        log "$name: a second API process on the same database"
        local first_base=$BASE first_pid=$SERVER_PID
        mkdir -p "$data_dir/second"
        start_server "$name-2" "$data_dir/second" "$db_url"
        local second_base=$BASE second_pid=$SERVER_PID
        track_pid "$second_pid"
        SERVER_PID=$first_pid
        curl -fsS -o /dev/null -H "$auth" "$second_base/v1/user" || die "$name: GET /v1/user on the second process failed"
        run_wrk "$out/warm-second" -t2 -c16 -d2s -H "$auth" "$second_base/v1/user"
        local one=() two=()
        for ((r = 1; r <= ROUNDS; r++)); do
            run_wrk "$out/one$r" -t2 -c64 -d"$DURATION" -H "$auth" "$first_base/v1/user"
            one+=("$(wrk_rps "$out/one$r")")
            run_wrk "$out/twoa$r" -t1 -c32 -d"$DURATION" -H "$auth" "$first_base/v1/user" &
            local wa=$!
            run_wrk "$out/twob$r" -t1 -c32 -d"$DURATION" -H "$auth" "$second_base/v1/user"
            wait "$wa"
            two+=("$(awk -v a="$(wrk_rps "$out/twoa$r")" -v b="$(wrk_rps "$out/twob$r")" 'BEGIN { printf "%.2f", a + b }')")
        done
        local m1 m2
        m1="$(median "${one[@]}")"
        m2="$(median "${two[@]}")"
        TWO_PROCESSES="GET /v1/user at 64 connections on PostgreSQL: one API process $m1 r/s, two API processes $m2 r/s ($(ratio_pct "$m2" "$m1") of one)"
        stop_pid "$second_pid" "second server"
    fi
    check_log "$name" "$data_dir/server.log"
    log "$name: stopping server"
    stop_server
}

TWO_PROCESSES=""
mkdir -p "$WORK/sqlite" "$WORK/postgres"
bench_backend sqlite "$WORK/sqlite" "sqlite://$WORK/sqlite/donkies.db"
pg_check
if [[ -z "$PG_SKIPPED" ]]; then
    pg_fresh_db
    bench_backend postgres "$WORK/postgres" "$PG_URL"
fi

echo
echo "donkies page reads  (nproc: $(nproc); wrk -t2 -c64 -d$DURATION, medians of $ROUNDS turns; one linked bank)"
printf '%-10s %-24s %12s %8s\n' backend path "r/s" "of hz"
printf '%s\n' "${ROWS[@]}"
[[ -z "$PG_SKIPPED" ]] || echo "postgres: skipped ($PG_SKIPPED)"
[[ -z "$TWO_PROCESSES" ]] || echo "$TWO_PROCESSES"
echo "goal: every page read >= 80% of /healthz on both engines"
print_surprises
