#!/usr/bin/env bash
# Load benchmark of the banking API: builds a release `donkies`, starts the standalone MX Atrium
# simulator, and for a fresh SQLite file and then a fresh PostgreSQL database links the
# simulator's mxbank for one user (5000 transactions) and measures with wrk:
#   GET /healthz and GET /v1/members/<identifier> at 64 connections: req/s, p99, ratio;
#   GET /v1/transactions (all rows) at 8 connections: req/s, p99, response size.
# Then, on PostgreSQL only, the ingest of a 100000-transaction member: rows/s of the server's
# sync (store part and end to end, from its "transactions synced" log line) against psql
# \copy of the same rows into a table shaped like `transactions` (indexes included).
#
#   bash bench/banking.sh
#   BENCH_POSTGRES_URL=postgres://USER@HOST:5432/postgres bash bench/banking.sh
set -euo pipefail

PASSWORD='bench password 1'
TX_PER_MEMBER=5000
INGEST_ROWS=100000
SIM_STEP_MS=20

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v jq >/dev/null 2>&1 || die "jq is not available"

declare -a ROWS=()
INGEST_LINES=()

# ---------------------------------------------------------------------------- simulator
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

SIM_LOG="$WORK/sim.log"
SIM_PORT="$(free_port)"
log "starting the Atrium simulator on 127.0.0.1:$SIM_PORT"
"$BIN" sandbox atrium --listen "127.0.0.1:$SIM_PORT" --step-ms "$SIM_STEP_MS" >"$SIM_LOG" 2>&1 &
SIM_PID=$!
track_pid "$SIM_PID"
SIM_URL=""
for ((i = 0; i < 100; i++)); do
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$SIM_LOG" >&2; die "simulator exited during start-up"; }
    SIM_URL="$(strip_ansi "$SIM_LOG" | grep -o 'Atrium simulator listening on http://[0-9.:]*' | head -n1 | sed 's/.* on //')" || true
    [[ -n "$SIM_URL" ]] && break
    sleep 0.1
done
[[ -n "$SIM_URL" ]] || { cat "$SIM_LOG" >&2; die "simulator did not print its URL within 10 s"; }
log "simulator at $SIM_URL (pid $SIM_PID)"

sim_settings() { # JSON
    curl -fsS -X POST "$SIM_URL/__sim/settings" -H 'Content-Type: application/json' -d "$1" \
        || die "POST /__sim/settings $1 failed"
    echo
}
sim_settings "{\"transactions_per_member\": $TX_PER_MEMBER}" >&2

SIM_ENV=(
    DONKIES_ATRIUM_URL="$SIM_URL"
    DONKIES_ATRIUM_CLIENT_ID=donkies-sandbox-client
    DONKIES_ATRIUM_KEY=donkies-sandbox-key
    DONKIES_MEMBER_POLL_MS=100
)

# ---------------------------------------------------------------------------- helpers
# wait_until SECONDS DESCRIPTION COMMAND...: retries COMMAND every 0.2 s.
wait_until() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what"
        sleep 0.2
    done
}

institutions_ready() { # BASE TOKEN
    local n
    n="$(curl -fsS -H "Authorization: Token $2" "$1/v1/institutions" | jq 'length')" || return 1
    [[ "$n" -gt 0 ]]
}

# link_mxbank NAME BASE TOKEN -> sets MEMBER_IDENT and MEMBER_ID once status_info.name == SUCCESS.
link_mxbank() {
    local name=$1 base=$2 token=$3 body code
    body="$WORK/$name-member.json"
    code="$(curl -sS -o "$body" -w '%{http_code}' -X POST "$base/v1/members" \
        -H "Authorization: Token $token" -H 'Content-Type: application/json' \
        -d '{"institution_code":"mxbank","credentials":[{"field_name":"LOGIN","value":"test_atrium"},{"field_name":"PASSWORD","value":"password"}]}')"
    [[ "$code" == 201 ]] || { cat "$body" >&2; die "$name: POST /v1/members: HTTP $code"; }
    MEMBER_IDENT="$(jq -r '.identifier' "$body")"
    [[ -n "$MEMBER_IDENT" && "$MEMBER_IDENT" != null ]] || die "$name: no identifier in $(cat "$body")"
    local deadline=$((SECONDS + 60)) status=""
    while ((SECONDS < deadline)); do
        curl -fsS -o "$body" -H "Authorization: Token $token" \
            "$base/v1/members/$MEMBER_IDENT?wait=5" || die "$name: GET /v1/members/$MEMBER_IDENT failed"
        status="$(jq -r '.status_info.name' "$body")"
        [[ "$status" == SUCCESS ]] && break
        case "$status" in
        *ERROR* | *FAIL* | DENIED | LOCKED | CHALLENGED) die "$name: member ended in $status: $(cat "$body")" ;;
        esac
        sleep 0.1
    done
    [[ "$status" == SUCCESS ]] || die "$name: member not SUCCESS after 60 s (last: $status)"
    MEMBER_ID="$(jq -r '.id' "$body")"
}

tx_count() { # BASE TOKEN
    curl -fsS -H "Authorization: Token $2" "$1/v1/transactions" | jq 'length'
}

# synced_line LOGFILE MEMBER_ID -> the first "transactions synced" line of that member.
synced_line() {
    strip_ansi "$1" | grep 'transactions synced' | grep -E "member=$2( |$)" | head -n1
}
field() { # LINE NAME -> numeric value of NAME=...
    sed -n "s/.*[[:space:]]$2=\([0-9]*\).*/\1/p" <<<"$1"
}

# ---------------------------------------------------------------------------- per backend
# bench_backend NAME DATA_DIR DATABASE_URL  (leaves the server running)
bench_backend() {
    local name=$1 data_dir=$2 db_url=$3 out="$2/wrk"
    mkdir -p "$out"
    log "$name: starting server"
    start_server "$name" "$data_dir" "$db_url" "${SIM_ENV[@]}"
    log "$name: listening on $BASE (pid $SERVER_PID)"

    signup_one "$BASE" 1 "$PASSWORD" || die "$name: sign-up failed"
    local token
    token="$(login "$BASE" bench1@example.com "$PASSWORD")"
    [[ -n "$token" ]] || die "$name: login returned no token"
    wait_until 60 "$name: GET /v1/institutions non-empty" institutions_ready "$BASE" "$token"

    log "$name: linking mxbank"
    local t0=$SECONDS
    link_mxbank "$name" "$BASE" "$token"
    log "$name: member $MEMBER_IDENT (id $MEMBER_ID) SUCCESS after $((SECONDS - t0)) s"

    # Wait for the sync to be logged and the count to be what the simulator holds.
    wait_until 60 "$name: transactions synced for $MEMBER_ID" \
        eval '[[ -n "$(synced_line "$data_dir/server.log" "$MEMBER_ID")" ]]'
    local count deadline=$((SECONDS + 30))
    while :; do
        count="$(tx_count "$BASE" "$token")"
        [[ "$count" == "$TX_PER_MEMBER" ]] && break
        ((SECONDS < deadline)) || break
        sleep 0.2
    done
    local synced
    synced="$(synced_line "$data_dir/server.log" "$MEMBER_ID")"
    log "$name: $count transactions via the API after $((SECONDS - t0)) s; log: rows=$(field "$synced" rows) fetch_ms=$(field "$synced" fetch_ms) store_ms=$(field "$synced" store_ms)"
    [[ "$count" == "$TX_PER_MEMBER" ]] \
        || surprise "$name: GET /v1/transactions returns $count items, simulator set to $TX_PER_MEMBER"
    local bytes
    bytes="$(curl -fsS -o /dev/null -w '%{size_download}' -H "Authorization: Token $token" "$BASE/v1/transactions")"

    local auth="Authorization: Token $token" member_url="$BASE/v1/members/$MEMBER_IDENT"
    log "$name: warming up"
    run_wrk "$out/warm-healthz" -t2 -c16 -d2s "$BASE/healthz"
    run_wrk "$out/warm-member" -t2 -c16 -d2s -H "$auth" "$member_url"

    log "$name: GET /healthz"
    run_wrk "$out/healthz" -t2 -c64 -d"$DURATION" --latency "$BASE/healthz"
    check_wrk "$name" "GET /healthz" "$out/healthz"
    log "$name: GET /v1/members/<identifier>"
    run_wrk "$out/member" -t2 -c64 -d"$DURATION" --latency -H "$auth" "$member_url"
    check_wrk "$name" "GET /v1/members/<identifier>" "$out/member"
    log "$name: GET /v1/transactions ($count rows, $bytes bytes)"
    run_wrk "$out/tx" -t2 -c8 -d"$DURATION" --latency -H "$auth" "$BASE/v1/transactions"
    check_wrk "$name" "GET /v1/transactions" "$out/tx"

    local h_rps h_p99 m_rps m_p99 t_rps t_p99
    h_rps="$(wrk_rps "$out/healthz")"
    h_p99="$(wrk_p99 "$out/healthz")"
    m_rps="$(wrk_rps "$out/member")"
    m_p99="$(wrk_p99 "$out/member")"
    t_rps="$(wrk_rps "$out/tx")"
    t_p99="$(wrk_p99 "$out/tx")"
    ROWS+=("$(printf '%-10s %12s %9s %12s %9s %8s %8s %9s %9s %10s' \
        "$name" "$h_rps" "$h_p99" "$m_rps" "$m_p99" "$(ratio_pct "$m_rps" "$h_rps")" \
        "$count" "$t_rps" "$t_p99" "$bytes")")
}

# ingest NAME DATA_DIR  (PostgreSQL server of bench_backend still running; PG_URL set)
ingest() {
    local name=$1 data_dir=$2 logf="$2/server.log"
    log "ingest: simulator to $INGEST_ROWS transactions per member"
    sim_settings "{\"transactions_per_member\": $INGEST_ROWS}" >&2
    signup_one "$BASE" 2 "$PASSWORD" || die "ingest: sign-up failed"
    local token
    token="$(login "$BASE" bench2@example.com "$PASSWORD")"
    [[ -n "$token" ]] || die "ingest: login returned no token"
    local t0=$SECONDS
    link_mxbank ingest "$BASE" "$token"
    log "ingest: member $MEMBER_IDENT (id $MEMBER_ID) SUCCESS after $((SECONDS - t0)) s"
    wait_until 150 "ingest: transactions synced rows=$INGEST_ROWS for $MEMBER_ID" \
        eval '[[ -n "$(synced_line "$logf" "$MEMBER_ID")" ]]'
    local line rows fetch_ms store_ms
    line="$(synced_line "$logf" "$MEMBER_ID")"
    rows="$(field "$line" rows)"
    fetch_ms="$(field "$line" fetch_ms)"
    store_ms="$(field "$line" store_ms)"
    log "ingest: synced after $((SECONDS - t0)) s: rows=$rows fetch_ms=$fetch_ms store_ms=$store_ms"
    [[ "$rows" == "$INGEST_ROWS" ]] || surprise "ingest: synced rows=$rows, simulator set to $INGEST_ROWS"
    check_log "$name (after ingest)" "$logf"

    # Baseline: psql \copy of the same rows into a table shaped like `transactions`.
    local uid csv="$WORK/ingest.csv" out
    uid="$(psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "SELECT id FROM users WHERE email = 'bench2@example.com'")"
    [[ -n "$uid" ]] || die "ingest: no user id for bench2@example.com"
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy (SELECT * FROM transactions WHERE user_id = '$uid') TO '$csv' WITH (FORMAT csv)" >/dev/null
    local csv_rows
    csv_rows="$(wc -l <"$csv")"
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS copy_baseline" \
        -c "CREATE TABLE copy_baseline (LIKE transactions INCLUDING ALL)" >/dev/null
    out="$(psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c '\timing on' \
        -c "\\copy copy_baseline FROM '$csv' WITH (FORMAT csv)")"
    local copy_ms
    copy_ms="$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -n1)"
    [[ -n "$copy_ms" ]] || die "ingest: no timing in psql output: $out"
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "DROP TABLE copy_baseline" >/dev/null
    log "ingest: COPY of $csv_rows rows took $copy_ms ms"

    local ours e2e copy ratio
    ours="$(awk -v r="$rows" -v ms="$store_ms" 'BEGIN { if (ms > 0) printf "%.0f", r / (ms / 1000); else print "n/a" }')"
    e2e="$(awk -v r="$rows" -v a="$fetch_ms" -v b="$store_ms" 'BEGIN { if (a + b > 0) printf "%.0f", r / ((a + b) / 1000); else print "n/a" }')"
    copy="$(awk -v r="$csv_rows" -v ms="$copy_ms" 'BEGIN { if (ms > 0) printf "%.0f", r / (ms / 1000); else print "n/a" }')"
    ratio="$(ratio_pct "$ours" "$copy")"
    INGEST_LINES+=(
        "$(printf 'ingest     ours (store):  %8s rows in %6s ms = %8s rows/s' "$rows" "$store_ms" "$ours")"
        "$(printf 'ingest     ours (e2e):    %8s rows in %6s ms = %8s rows/s  (fetch_ms=%s)' "$rows" "$((fetch_ms + store_ms))" "$e2e" "$fetch_ms")"
        "$(printf 'ingest     psql \\copy:    %8s rows in %6s ms = %8s rows/s' "$csv_rows" "$copy_ms" "$copy")"
        "$(printf 'ingest     ours/COPY: %s  (goal >= 50%%)' "$ratio")"
    )
}

# ---------------------------------------------------------------------------- SQLite
mkdir -p "$WORK/sqlite"
bench_backend sqlite "$WORK/sqlite" "sqlite://$WORK/sqlite/donkies.db"
check_log sqlite "$WORK/sqlite/server.log"
log "sqlite: stopping server"
stop_server

# ---------------------------------------------------------------------------- PostgreSQL
pg_check
if [[ -z "$PG_SKIPPED" ]]; then
    pg_fresh_db
    mkdir -p "$WORK/postgres"
    bench_backend postgres "$WORK/postgres" "$PG_URL"
    ingest postgres "$WORK/postgres"
    log "postgres: stopping server"
    stop_server
else
    log "skipping PostgreSQL and the ingest: $PG_SKIPPED"
fi

# ---------------------------------------------------------------------------- report
echo
echo "donkies banking benchmark  (nproc: $(nproc); wrk -t2 -c64 -d$DURATION for healthz/member, -c8 for transactions)"
printf '%-10s %12s %9s %12s %9s %8s %8s %9s %9s %10s\n' \
    backend "healthz r/s" "p99" "member r/s" "p99" "mem/hz" "tx rows" "tx r/s" "tx p99" "tx bytes"
for row in "${ROWS[@]}"; do echo "$row"; done
if [[ -z "$PG_SKIPPED" ]]; then
    for line in "${INGEST_LINES[@]}"; do echo "$line"; done
else
    echo "postgres   skipped: $PG_SKIPPED"
    echo "ingest     skipped: $PG_SKIPPED"
fi
echo "goal: member/healthz >= 60%, member p99 < 10ms; ingest ours(store)/COPY >= 50%"
print_surprises
