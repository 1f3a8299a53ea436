#!/usr/bin/env bash
# The cost of /metrics: requests/s of GET /v1/user (a valid token, 64 connections) on a release
# `donkies` with metrics on (the default: every request counted and timed) and with
# DONKIES_METRICS_LISTEN=off (nothing recorded per request), on one SQLite file. The two servers
# take turns, ROUNDS times each, so a noisy machine weighs on both alike; it prints each round,
# the median of each and their ratio (goal: within 5 %).
#
#   bash bench/metrics.sh
#   BENCH_METRICS_ROUNDS=5 bash bench/metrics.sh
set -euo pipefail

ROUNDS="${BENCH_METRICS_ROUNDS:-3}"
PASSWORD='bench password 1'
export PASSWORD

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA="$WORK/sqlite"
mkdir -p "$DATA/wrk"
DB_URL="sqlite://$DATA/donkies.db"

log "preparing a user"
start_server setup "$DATA" "$DB_URL"
signup_one "$BASE" 1 || die "sign-up failed"
stop_server

declare -a ON=() OFF=()
# one_round LABEL [VAR=VALUE...] -> prints requests/s of GET /v1/user
one_round() {
    local label=$1
    shift
    start_server "$label" "$DATA" "$DB_URL" "$@"
    local token
    token="$(login "$BASE" bench1@example.com "$PASSWORD")"
    [[ -n "$token" ]] || die "$label: login returned no token"
    run_wrk "$DATA/wrk/warm" -t2 -c16 -d2s -H "Authorization: Token $token" "$BASE/v1/user"
    run_wrk "$DATA/wrk/$label" -t2 -c64 -d"$DURATION" -H "Authorization: Token $token" "$BASE/v1/user"
    check_wrk "$label" "GET /v1/user" "$DATA/wrk/$label"
    if [[ "$label" == on* ]]; then
        local scrape
        scrape="$(curl -fsS "$BASE/metrics")"
        grep -q '^donkies_http_requests_total' <<<"$scrape" || surprise "$label: /metrics shows no requests"
    else
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")" == 404 ]] || surprise "$label: /metrics answered"
    fi
    check_log "$label" "$DATA/server.log"
    stop_server
    wrk_rps "$DATA/wrk/$label"
}

for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r: metrics on"
    ON+=("$(one_round "on$r")")
    log "round $r: metrics off"
    OFF+=("$(one_round "off$r" DONKIES_METRICS_LISTEN=off)")
done

on_median="$(median "${ON[@]}")"
off_median="$(median "${OFF[@]}")"

echo
echo "donkies /metrics cost  (nproc: $(nproc); wrk -t2 -c64 -d$DURATION GET /v1/user, SQLite, $ROUNDS rounds each, taking turns)"
printf '%-14s %s\n' "metrics on:" "${ON[*]}"
printf '%-14s %s\n' "metrics off:" "${OFF[*]}"
printf '%-14s %10s req/s\n' "median on" "$on_median"
printf '%-14s %10s req/s\n' "median off" "$off_median"
printf '%-14s %10s (goal: at least 95%%)\n' "on / off" "$(ratio_pct "$on_median" "$off_median")"
print_surprises
