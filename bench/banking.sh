#!/usr/bin/env bash
# Load benchmark of the banking API: builds a release `donkies`, starts the standalone MX Atrium
# simulator, and for a fresh SQLite file and then a fresh PostgreSQL database links the
# simulator's mxbank for one user (5000 transactions) and measures with wrk:
#   GET /healthz and GET /v1/members/<identifier> at 64 connections: req/s, p99, ratio;
#   GET /v1/transactions (all rows) at 8 connections: req/s, p99, response size, as a full 200,
#   as a 304 (If-None-Match with its ETag) and gzip-encoded (Accept-Encoding: gzip), against the
#   limit of this machine: the same bytes as a static body from a tiny server on the same
#   runtime and HTTP stack (crates/server/examples/static_body.rs), the two taking 3 turns
#   (medians, and the worst turn's p99).
# Then, on each engine, 3 ingests of a 100000-transaction member, each followed by the engine's
# bulk loader with the same rows into a table shaped like `transactions` (indexes included):
# psql \copy on PostgreSQL (also with a per-row foreign key to accounts, for scale), the
# sqlite3 shell's .import on SQLite. Rows/s of the server's sync (store part and end to end,
# from its "transactions synced" log line) against the loader, medians.
#
#   bash bench/banking.sh
#   BENCH_POSTGRES_URL=postgres://USER@HOST:5432/postgres bash bench/banking.sh
set -euo pipefail

PASSWORD='bench password 1'
TX_PER_MEMBER=5000
INGEST_ROWS=100000
SIM_STEP_MS=20
# Turns of the list against the yardstick, and ingests against the bulk loader: medians are
# reported (this machine is noisy).
ROUNDS=3

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v jq >/dev/null 2>&1 || die "jq is not available"
need_tool sqlite3

STATIC_BIN="$(build_example static_body "the static-body yardstick")"

declare -a ROWS=()
declare -a TX_ROWS=()
declare -a ROUND_LINES=()
INGEST_LINES=()

# ---------------------------------------------------------------------------- simulator
start_atrium_sim "$SIM_STEP_MS"
sim_settings "{\"transactions_per_member\": $TX_PER_MEMBER}" >&2

# ---------------------------------------------------------------------------- helpers
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
    sim_settings "{\"transactions_per_member\": $TX_PER_MEMBER}" >&2
    log "$name: starting server"
    start_server "$name" "$data_dir" "$db_url" "${SIM_ENV[@]}"
    log "$name: listening on $BASE (pid $SERVER_PID)"

    local token
    token="$(banking_user "$name" "$BASE")"

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
    local bytes list="$data_dir/list.json" etag gz_bytes
    curl -fsS -D "$data_dir/list.headers" -o "$list" -H "Authorization: Token $token" "$BASE/v1/transactions"
    bytes="$(wc -c <"$list")"
    etag="$(sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^[:space:]]*\).*/\1/p' "$data_dir/list.headers")"
    [[ -n "$etag" ]] || surprise "$name: GET /v1/transactions sent no ETag"
    gz_bytes="$(curl -fsS -o /dev/null -w '%{size_download}' -H 'Accept-Encoding: gzip' \
        -H "Authorization: Token $token" "$BASE/v1/transactions")"

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
    log "$name: GET /v1/transactions ($count rows, $bytes bytes) and the same bytes as a static body (the yardstick), taking turns"
    start_static "$list"
    run_wrk "$out/warm-tx" -t2 -c8 -d2s -H "$auth" "$BASE/v1/transactions"
    run_wrk "$out/warm-static" -t2 -c8 -d2s "$STATIC_URL/"
    local r
    for ((r = 1; r <= ROUNDS; r++)); do
        log "$name: round $r of $ROUNDS: the yardstick, then GET /v1/transactions"
        run_wrk "$out/static$r" -t2 -c8 -d"$DURATION" --latency "$STATIC_URL/"
        check_wrk yardstick "static body" "$out/static$r"
        run_wrk "$out/tx$r" -t2 -c8 -d"$DURATION" --latency -H "$auth" "$BASE/v1/transactions"
        check_wrk "$name" "GET /v1/transactions" "$out/tx$r"
    done
    stop_static
    log "$name: GET /v1/transactions with If-None-Match (304)"
    run_wrk "$out/tx304" -t2 -c8 -d"$DURATION" --latency -H "$auth" -H "If-None-Match: $etag" "$BASE/v1/transactions"
    check_wrk "$name" "GET /v1/transactions (304)" "$out/tx304"
    log "$name: GET /v1/transactions with Accept-Encoding: gzip ($gz_bytes bytes)"
    run_wrk "$out/txgz" -t2 -c8 -d"$DURATION" --latency -H "$auth" -H 'Accept-Encoding: gzip' "$BASE/v1/transactions"
    check_wrk "$name" "GET /v1/transactions (gzip)" "$out/txgz"

    local h_rps h_p99 m_rps m_p99 t_rps t_p99 s_rps s_p99
    h_rps="$(wrk_rps "$out/healthz")"
    h_p99="$(wrk_p99 "$out/healthz")"
    m_rps="$(wrk_rps "$out/member")"
    m_p99="$(wrk_p99 "$out/member")"
    # Medians of the rounds' rates; the worst round's p99.
    t_rps="$(median $(for ((r = 1; r <= ROUNDS; r++)); do wrk_rps "$out/tx$r"; done))"
    t_p99="$(worst_ms $(for ((r = 1; r <= ROUNDS; r++)); do wrk_p99 "$out/tx$r"; done))"
    s_rps="$(median $(for ((r = 1; r <= ROUNDS; r++)); do wrk_rps "$out/static$r"; done))"
    s_p99="$(worst_ms $(for ((r = 1; r <= ROUNDS; r++)); do wrk_p99 "$out/static$r"; done))"
    ROWS+=("$(printf '%-10s %12s %9s %12s %9s %8s %8s %9s %9s %10s' \
        "$name" "$h_rps" "$h_p99" "$m_rps" "$m_p99" "$(ratio_pct "$m_rps" "$h_rps")" \
        "$count" "$t_rps" "$t_p99" "$bytes")")
    for ((r = 1; r <= ROUNDS; r++)); do
        ROUND_LINES+=("$(printf '%-10s round %d: static %s r/s (p99 %s), 200 %s r/s (p99 %s): %s' "$name" "$r" \
            "$(wrk_rps "$out/static$r")" "$(wrk_p99 "$out/static$r")" "$(wrk_rps "$out/tx$r")" \
            "$(wrk_p99 "$out/tx$r")" "$(ratio_pct "$(wrk_rps "$out/tx$r")" "$(wrk_rps "$out/static$r")")")")
    done
    local n_rps n_p99 g_rps g_p99
    n_rps="$(wrk_rps "$out/tx304")"
    n_p99="$(wrk_p99 "$out/tx304")"
    g_rps="$(wrk_rps "$out/txgz")"
    g_p99="$(wrk_p99 "$out/txgz")"
    TX_ROWS+=("$(printf '%-10s %11s %9s %11s %9s %9s %11s %9s %10s %11s %9s' \
        "$name" "$s_rps" "$s_p99" "$t_rps" "$t_p99" "$(ratio_pct "$t_rps" "$s_rps")" \
        "$n_rps" "$n_p99" "$(ratio_pct "$t_rps" "$n_rps")" "$g_rps" "$g_p99")")
}

# start_static FILE -> STATIC_URL, STATIC_PID: the yardstick serving FILE.
start_static() {
    local file=$1 slog="$WORK/static.log" addr="" i
    "$STATIC_BIN" "$file" 127.0.0.1:0 >"$slog" 2>&1 &
    STATIC_PID=$!
    track_pid "$STATIC_PID"
    for ((i = 0; i < 100; i++)); do
        addr="$(grep -o 'listening on http://[0-9.:]*' "$slog" | head -n1 | sed 's/.*http:\/\///')" || true
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    [[ -n "$addr" ]] || { cat "$slog" >&2; die "the static-body yardstick did not start"; }
    STATIC_URL="http://$addr"
    cmp -s "$file" <(curl -fsS "$STATIC_URL/") || die "the yardstick serves other bytes than $file"
}

stop_static() {
    kill -TERM "$STATIC_PID" 2>/dev/null || true
    wait "$STATIC_PID" 2>/dev/null || true # it has no shutdown of its own: SIGTERM is its normal end
}

# ingest NAME DATA_DIR EMAIL_N  (server of bench_backend still running; PG_URL set on PostgreSQL)
# ROUNDS turns, each a new user's member synced by the server and then the same rows through the
# engine's bulk loader; medians are reported.
ingest() {
    local name=$1 data_dir=$2 n=$3 logf="$2/server.log"
    log "$name ingest: simulator to $INGEST_ROWS transactions per member"
    sim_settings "{\"transactions_per_member\": $INGEST_ROWS}" >&2
    local label r user token t0 line rows fetch_ms store_ms
    local -a stores=() fetches=() bases=() fks=()
    case "$name" in
    postgres) label='psql \copy' ;;
    sqlite) label='sqlite3 .import' ;;
    esac
    for ((r = 0; r < ROUNDS; r++)); do
        user=$((n + r))
        [[ $name != postgres ]] || settle_pg
        signup_one "$BASE" "$user" "$PASSWORD" || die "$name ingest: sign-up failed"
        token="$(login "$BASE" "bench$user@example.com" "$PASSWORD")"
        [[ -n "$token" ]] || die "$name ingest: login returned no token"
        t0=$SECONDS
        link_mxbank ingest "$BASE" "$token"
        log "$name ingest $((r + 1))/$ROUNDS: member $MEMBER_IDENT (id $MEMBER_ID) SUCCESS after $((SECONDS - t0)) s"
        wait_until 300 "$name ingest: transactions synced rows=$INGEST_ROWS for $MEMBER_ID" \
            eval '[[ -n "$(synced_line "$logf" "$MEMBER_ID")" ]]'
        line="$(synced_line "$logf" "$MEMBER_ID")"
        rows="$(field "$line" rows)"
        fetch_ms="$(field "$line" fetch_ms)"
        store_ms="$(field "$line" store_ms)"
        log "$name ingest $((r + 1))/$ROUNDS: synced after $((SECONDS - t0)) s: rows=$rows fetch_ms=$fetch_ms store_ms=$store_ms"
        [[ "$rows" == "$INGEST_ROWS" ]] || surprise "$name ingest: synced rows=$rows, simulator set to $INGEST_ROWS"
        case "$name" in
        postgres) baseline_copy "bench$user@example.com" ;;
        sqlite) baseline_import "$data_dir/donkies.db" "bench$user@example.com" ;;
        esac
        log "$name ingest $((r + 1))/$ROUNDS: $label of $BASE_ROWS rows took $BASE_MS ms"
        [[ "$BASE_ROWS" == "$rows" ]] || surprise "$name ingest: the baseline loaded $BASE_ROWS rows, the server $rows"
        stores+=("$store_ms")
        fetches+=("$fetch_ms")
        bases+=("$BASE_MS")
        [[ -z "${FK_MS:-}" ]] || fks+=("$FK_MS")
        INGEST_LINES+=("$(printf '%-10s turn %d: ours %s ms, %s %s ms%s' "$name" "$((r + 1))" "$store_ms" "$label" "$BASE_MS" \
            "$([[ -n "${FK_MS:-}" ]] && echo ", with FK $FK_MS ms")")")
    done
    check_log "$name (after ingest)" "$logf"

    store_ms="$(median "${stores[@]}")"
    fetch_ms="$(median "${fetches[@]}")"
    BASE_MS="$(median "${bases[@]}")"
    local ours e2e base ratio
    ours="$(awk -v r="$rows" -v ms="$store_ms" 'BEGIN { if (ms > 0) printf "%.0f", r / (ms / 1000); else print "n/a" }')"
    e2e="$(awk -v r="$rows" -v a="$fetch_ms" -v b="$store_ms" 'BEGIN { if (a + b > 0) printf "%.0f", r / ((a + b) / 1000); else print "n/a" }')"
    base="$(awk -v r="$BASE_ROWS" -v ms="$BASE_MS" 'BEGIN { if (ms > 0) printf "%.0f", r / (ms / 1000); else print "n/a" }')"
    ratio="$(ratio_pct "$ours" "$base")"
    INGEST_LINES+=(
        "$(printf '%-10s ours (store):    %8s rows in %6s ms = %8s rows/s  (median)' "$name" "$rows" "$store_ms" "$ours")"
        "$(printf '%-10s ours (e2e):      %8s rows in %6s ms = %8s rows/s  (fetch_ms=%s)' "$name" "$rows" "$(awk -v a="$fetch_ms" -v b="$store_ms" 'BEGIN { print a + b }')" "$e2e" "$fetch_ms")"
        "$(printf '%-10s %-16s %8s rows in %6s ms = %8s rows/s  (median)' "$name" "$label:" "$BASE_ROWS" "$BASE_MS" "$base")"
    )
    if ((${#fks[@]} > 0)); then
        local fk_ms fk
        fk_ms="$(median "${fks[@]}")"
        fk="$(awk -v r="$BASE_ROWS" -v ms="$fk_ms" 'BEGIN { if (ms > 0) printf "%.0f", r / (ms / 1000); else print "n/a" }')"
        INGEST_LINES+=(
            "$(printf '%-10s %-16s %8s rows in %6s ms = %8s rows/s  (median)' "$name" '\copy with FK:' "$BASE_ROWS" "$fk_ms" "$fk")"
            "$(printf '%-10s ours/(\copy with a per-row foreign key): %s' "$name" "$(ratio_pct "$ours" "$fk")")"
        )
    fi
    INGEST_LINES+=(
        "$(printf '%-10s ours/%s: %s  (goal >= %s)' "$name" "$label" "$ratio" "$([[ $name == postgres ]] && echo 80% || echo 50%)")"
    )
}

# settle_pg: vacuum and analyze what the earlier turns wrote and write every dirty page out, so
# that each timed load (ours and the baseline's) starts from the same state, not in the middle
# of an autovacuum or a checkpoint that an earlier one caused.
settle_pg() {
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
}

# baseline_copy EMAIL -> BASE_ROWS, BASE_MS: psql \copy of the user's rows into a table shaped like
# `transactions` (its indexes included).
baseline_copy() {
    local uid csv="$WORK/ingest-pg.csv" out
    uid="$(psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "SELECT id FROM users WHERE email = '$1'")"
    [[ -n "$uid" ]] || die "ingest: no user id for $1"
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "\\copy (SELECT * FROM transactions WHERE user_id = '$uid') TO '$csv' WITH (FORMAT csv)" >/dev/null
    BASE_ROWS="$(wc -l <"$csv")"
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 \
        -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS copy_baseline" \
        -c "CREATE TABLE copy_baseline (LIKE transactions INCLUDING ALL)" >/dev/null
    settle_pg
    out="$(psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c '\timing on' \
        -c "\\copy copy_baseline FROM '$csv' WITH (FORMAT csv)")"
    BASE_MS="$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -n1)"
    [[ -n "$BASE_MS" ]] || die "ingest: no timing in psql output: $out"
    # The same with a per-row foreign key to accounts, for scale: `transactions` checks its
    # accounts once per statement instead.
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "TRUNCATE copy_baseline" \
        -c "ALTER TABLE copy_baseline ADD FOREIGN KEY (account_id) REFERENCES accounts (id)" >/dev/null
    settle_pg
    out="$(psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c '\timing on' \
        -c "\\copy copy_baseline FROM '$csv' WITH (FORMAT csv)")"
    FK_MS="$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' <<<"$out" | tail -n1)"
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "DROP TABLE copy_baseline" >/dev/null
}

# baseline_import DB_FILE EMAIL -> BASE_ROWS, BASE_MS: the sqlite3 shell's .import (one prepared
# statement in one transaction) of the user's rows into a table shaped like `transactions`
# (same columns and indexes), in the same database file.
baseline_import() {
    FK_MS=""
    local db=$1 uid csv="$WORK/ingest-sqlite.csv" schema t0 t1
    uid="$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT id FROM users WHERE email = '$2'")"
    [[ -n "$uid" ]] || die "ingest: no user id for $2"
    sqlite3 -cmd ".timeout 10000" -csv "$db" "SELECT * FROM transactions WHERE user_id = $uid" >"$csv"
    BASE_ROWS="$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT COUNT(*) FROM transactions WHERE user_id = $uid")"
    schema="$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT sql || ';' FROM sqlite_master WHERE tbl_name = 'transactions' AND sql IS NOT NULL" \
        | sed 's/\btransactions\b/import_baseline/g; s/\btransactions_/import_baseline_/g')"
    sqlite3 -cmd ".timeout 10000" "$db" "DROP TABLE IF EXISTS import_baseline; $schema"
    t0="$(date +%s%N)"
    sqlite3 -cmd ".timeout 10000" "$db" ".import --csv $csv import_baseline"
    t1="$(date +%s%N)"
    BASE_MS="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
    local imported
    imported="$(sqlite3 -cmd ".timeout 10000" "$db" "SELECT COUNT(*) FROM import_baseline")"
    [[ "$imported" == "$BASE_ROWS" ]] || surprise "sqlite ingest: .import stored $imported of $BASE_ROWS rows"
    sqlite3 -cmd ".timeout 10000" "$db" "DROP TABLE import_baseline"
}

# ---------------------------------------------------------------------------- SQLite
mkdir -p "$WORK/sqlite"
bench_backend sqlite "$WORK/sqlite" "sqlite://$WORK/sqlite/donkies.db"
check_log sqlite "$WORK/sqlite/server.log"
ingest sqlite "$WORK/sqlite" 2
log "sqlite: stopping server"
stop_server

# ---------------------------------------------------------------------------- PostgreSQL
pg_check
if [[ -z "$PG_SKIPPED" ]]; then
    pg_fresh_db
    mkdir -p "$WORK/postgres"
    bench_backend postgres "$WORK/postgres" "$PG_URL"
    ingest postgres "$WORK/postgres" 2
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
echo
echo "GET /v1/transactions at 8 connections: the full 200 against the same bytes as a static body (limit), the 304, and gzip"
printf '%-10s %11s %9s %11s %9s %9s %11s %9s %10s %11s %9s\n' \
    backend "static r/s" "p99" "200 r/s" "p99" "200/stat" "304 r/s" "p99" "200/304" "gzip r/s" "p99"
for row in "${TX_ROWS[@]}"; do echo "$row"; done
echo "(medians of $ROUNDS turns, the worst turn's p99; the turns:)"
for line in "${ROUND_LINES[@]}"; do echo "$line"; done
echo
for line in "${INGEST_LINES[@]}"; do echo "$line"; done
[[ -z "$PG_SKIPPED" ]] || echo "postgres   skipped: $PG_SKIPPED"
echo "goals: member/healthz >= 60%, member p99 < 10ms; tx 200 >= min(400 r/s, 80% of static), tx p99 < 100ms;"
echo "       ingest ours(store)/\\copy >= 80% on PostgreSQL, ours(store)/.import >= 50% on SQLite"
print_surprises
