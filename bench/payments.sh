#!/usr/bin/env bash
# Throughput benchmark of payments through Dwolla (issue 8): transfers created at Dwolla and
# tracked to `processed` per second, through the Dwolla client, against the standalone Dwolla
# simulator, with 1 and then 4 `donkies worker` processes on one PostgreSQL database.
#
# Builds a release `donkies`, starts `donkies sandbox atrium` and `donkies sandbox dwolla`
# (no processing of its own), then `donkies serve --no-worker` on a fresh PostgreSQL database
# pointed at both (DONKIES_PUBLIC_URL = the server, so the simulator's webhooks come back).
# With one setup worker it gives USERS users, through the HTTP API, a verified customer and a
# verified round-up funding source by IAV. Then for each worker count W:
#   1. records TRANSFERS transfers with no worker running (`donkies payments transfer
#      --count`, through Services::transfer: a row and a send_transfer job each);
#   2. starts W `donkies worker` processes: "created" is the time until every transfer has a
#      Dwolla id;
#   3. once the queue is empty, asks the simulator to process (POST /__sim/simulate, the same
#      as /sandbox-simulations, 500 transfers a call, until none is pending): "tracked" is the
#      time until every transfer is `processed` in our database (webhooks -> apply jobs);
#   4. reads the simulator's counters (GET /__sim/stats): tokens issued while the workers ran
#      (about one per worker process when the token cache works) and tokens refused; and
#      counts the distinct TCP connections the workers held to the simulator (sampled with
#      ss: a handful per worker when connections are reused).
# Last, a baseline in the same run: wrk POSTing /transfers straight at the simulator (one
# request per transfer, where a send_transfer job makes two and writes our database).
#
#   bash bench/payments.sh
#   BENCH_POSTGRES_URL=postgres://USER@HOST:5432/postgres bash bench/payments.sh
#   BENCH_PAYMENT_USERS=20 BENCH_TRANSFERS=2000 BENCH_WORKERS="1 4" bash bench/payments.sh
set -euo pipefail

PASSWORD='bench password 1'
USERS="${BENCH_PAYMENT_USERS:-20}"
TRANSFERS="${BENCH_TRANSFERS:-2000}"
WORKER_COUNTS="${BENCH_WORKERS:-1 4}"
JOB_POLL_MS=100
SIM_STEP_MS=20
export PASSWORD

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v jq >/dev/null 2>&1 || die "jq is not available"
command -v ss >/dev/null 2>&1 || die "ss is not available (iproute2)"
pg_check
[[ -z "$PG_SKIPPED" ]] || die "this benchmark needs PostgreSQL (several workers share its queue): $PG_SKIPPED"
((USERS > 0 && TRANSFERS >= USERS)) || die "need BENCH_TRANSFERS >= BENCH_PAYMENT_USERS > 0"
PER_USER=$((TRANSFERS / USERS))
TRANSFERS=$((PER_USER * USERS))

declare -a ROWS=()
declare -a CPU_LINES=()

# ---------------------------------------------------------------------------- helpers
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n / (ms / 1000); else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

# wait_url LOGFILE PID PATTERN -> prints the http://ADDR the process logged after PATTERN.
wait_url() {
    local i url
    for ((i = 0; i < 600; i++)); do
        kill -0 "$2" 2>/dev/null || { cat "$1" >&2; die "process $2 exited during start-up"; }
        url="$(strip_ansi "$1" 2>/dev/null | grep -o "$3 http://[0-9.:]*" | head -n1 | sed 's/.* //')" || true
        [[ -n "$url" ]] && { echo "$url"; return 0; }
        sleep 0.1
    done
    cat "$1" >&2
    die "no '$3' line in $1 within 60 s"
}

q() { psql "$PG_URL" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }

# Jobs still to run, periodic ones aside (finished jobs leave the table).
PERIODIC_KINDS="'cleanup','resync_members','sync_institutions','backfill_aggregator_users','poll_payments'"
jobs_pending() { q "SELECT count(*) FROM jobs WHERE status <> 'failed' AND kind NOT IN ($PERIODIC_KINDS)"; }
queue_empty() { [[ "$(jobs_pending)" == 0 ]]; }

sim_stat() { curl -fsS "$DWOLLA_URL/__sim/stats" | jq -r ".$1"; }

# ---------------------------------------------------------------------------- simulators
ATRIUM_LOG="$WORK/atrium.log"
"$BIN" sandbox atrium --listen "127.0.0.1:$(free_port)" --step-ms "$SIM_STEP_MS" >"$ATRIUM_LOG" 2>&1 &
ATRIUM_PID=$!
track_pid "$ATRIUM_PID"
ATRIUM_URL="$(wait_url "$ATRIUM_LOG" "$ATRIUM_PID" 'Atrium simulator listening on')"

DWOLLA_PORT="$(free_port)"
DWOLLA_LOG="$WORK/dwolla.log"
"$BIN" sandbox dwolla --listen "127.0.0.1:$DWOLLA_PORT" >"$DWOLLA_LOG" 2>&1 &
DWOLLA_PID=$!
track_pid "$DWOLLA_PID"
DWOLLA_URL="$(wait_url "$DWOLLA_LOG" "$DWOLLA_PID" 'Dwolla simulator listening on')"
export DWOLLA_URL
log "Atrium simulator at $ATRIUM_URL, Dwolla simulator at $DWOLLA_URL"

# ---------------------------------------------------------------------------- server
pg_fresh_db
mkdir -p "$WORK/data"
SERVE_PORT="$(free_port)"
BASE="http://127.0.0.1:$SERVE_PORT"
export BASE
APP_ENV=(
    DONKIES_DATA_DIR="$WORK/data"
    DATABASE_URL="$PG_URL"
    DONKIES_SECRET_KEY="$SECRET_KEY"
    DONKIES_LOGIN_RATE_PER_MINUTE=100000000
    DONKIES_ATRIUM_URL="$ATRIUM_URL"
    DONKIES_ATRIUM_CLIENT_ID=donkies-sandbox-client
    DONKIES_ATRIUM_KEY=donkies-sandbox-key
    DONKIES_MEMBER_POLL_MS=100
    DONKIES_DWOLLA_URL="$DWOLLA_URL"
    DONKIES_DWOLLA_KEY=donkies-sandbox-dwolla-key
    DONKIES_DWOLLA_SECRET=donkies-sandbox-dwolla-secret
    DONKIES_PUBLIC_URL="$BASE"
    DONKIES_JOB_POLL_MS="$JOB_POLL_MS"
)
SERVE_LOG="$WORK/serve.log"
env "${APP_ENV[@]}" "$BIN" serve --no-worker --listen "127.0.0.1:$SERVE_PORT" >"$SERVE_LOG" 2>&1 &
SERVER_PID=$!
wait_url "$SERVE_LOG" "$SERVER_PID" 'donkies listening on' >/dev/null
wait_until 30 "GET /healthz" curl -fsS -o /dev/null "$BASE/healthz"
log "server at $BASE (pid $SERVER_PID), database $PG_DB"

# start_worker LOGFILE -> sets WORKER_PID (registered for clean-up).
start_worker() {
    env "${APP_ENV[@]}" "$BIN" worker >"$1" 2>&1 &
    WORKER_PID=$!
    track_pid "$WORKER_PID"
}

# ---------------------------------------------------------------------------- users
# setup_user I: bench<I>@example.com with a linked mxbank, a complete profile (so a verified
# personal customer at Dwolla), and a verified IAV funding source as the round-up source.
setup_user() {
    local i=$1 email="bench$1@example.com" token body ident status deadline
    local fail="setup $email:"
    signup_one "$BASE" "$i" "$PASSWORD" || return 1
    token="$(login "$BASE" "$email" "$PASSWORD")"
    [[ -n "$token" ]] || { echo "$fail login returned no token" >&2; return 1; }
    local auth="Authorization: Token $token" json='Content-Type: application/json'
    deadline=$((SECONDS + 60))
    until [[ "$(curl -fsS -H "$auth" "$BASE/v1/institutions" | jq 'length')" -gt 0 ]]; do
        ((SECONDS < deadline)) || { echo "$fail no institutions" >&2; return 1; }
        sleep 0.2
    done
    body="$(curl -fsS -X POST "$BASE/v1/members" -H "$auth" -H "$json" \
        -d '{"institution_code":"mxbank","credentials":[{"field_name":"LOGIN","value":"test_atrium"},{"field_name":"PASSWORD","value":"password"}]}')" \
        || { echo "$fail POST /v1/members failed" >&2; return 1; }
    ident="$(jq -r '.identifier' <<<"$body")"
    deadline=$((SECONDS + 60))
    while :; do
        status="$(curl -fsS -H "$auth" "$BASE/v1/members/$ident?wait=5" | jq -r '.member_status // .status_info.name')"
        [[ "$status" == SUCCESS ]] && break
        ((SECONDS < deadline)) || { echo "$fail member $ident still $status" >&2; return 1; }
        sleep 0.1
    done
    curl -fsS -o /dev/null -X PUT "$BASE/v1/user" -H "$auth" -H "$json" \
        -d '{"phone":"6175550100","address1":"1 Main St","city":"Boston","state":"MA","postal_code":"02108","date_of_birth":"1990-05-17","ssn":"123-45-6789"}' \
        || { echo "$fail PUT /v1/user failed" >&2; return 1; }
    local customer=""
    deadline=$((SECONDS + 60))
    while :; do
        body="$(curl -fsS -H "$auth" "$BASE/v1/user")"
        if [[ "$(jq -r '.dwolla_customer.status // empty' <<<"$body")" == verified ]]; then
            customer="$(jq -r '.dwolla_customer.dwolla_id' <<<"$body")"
            break
        fi
        ((SECONDS < deadline)) || { echo "$fail customer never verified: $body" >&2; return 1; }
        sleep 0.1
    done
    local account iav source
    account="$(curl -fsS -H "$auth" "$BASE/v1/accounts" | jq -r '[.[] | select(.type_ds == "debit")][0].id')"
    [[ -n "$account" && "$account" != null ]] || { echo "$fail no debit account" >&2; return 1; }
    iav="$(curl -fsS -X POST -H "$auth" -H "$json" -d '{}' "$BASE/v1/get_iav_token/$customer" | jq -r '.token')"
    source="$(curl -fsS -X POST "$DWOLLA_URL/__sim/iav/$iav" | jq -r '._links["funding-source"].href' | sed 's#.*/##')"
    [[ -n "$source" && "$source" != null ]] || { echo "$fail IAV gave no funding source" >&2; return 1; }
    body="$(curl -fsS -X POST "$BASE/v1/create_funding_source_by_iav" -H "$auth" -H "$json" \
        -d "{\"account_id\": $account, \"dwolla_id\": \"$source\"}")" \
        || { echo "$fail create_funding_source_by_iav failed" >&2; return 1; }
    [[ "$(jq -r '.status' <<<"$body")" == verified ]] || { echo "$fail funding source: $body" >&2; return 1; }
    curl -fsS -o /dev/null -X POST "$BASE/v1/accounts/set_funding_source/$account" -H "$auth" -H "$json" -d '{}' \
        || { echo "$fail set_funding_source failed" >&2; return 1; }
}
export -f setup_user login

log "setting up $USERS users (one setup worker)"
start_worker "$WORK/setup-worker.log"
SETUP_WORKER=$WORKER_PID
t0=$SECONDS
seq 1 "$USERS" | xargs -P 4 -I{} bash -c 'setup_user {}' || die "user set-up failed"
wait_until 120 "the set-up jobs to finish" queue_empty
stop_pid "$SETUP_WORKER" worker
SOURCES="$(q "SELECT count(*) FROM accounts WHERE is_funding_source_for_transfer")"
[[ "$SOURCES" == "$USERS" ]] || die "$SOURCES round-up sources, expected $USERS"
log "$USERS users with a verified round-up source after $((SECONDS - t0)) s"

# ---------------------------------------------------------------------------- connections
# sample_connections OUTFILE: until killed, appends "pid port" of every established TCP
# connection a donkies process holds to the Dwolla simulator.
sample_connections() {
    while :; do
        ss -tanpH state established "( dport = :$DWOLLA_PORT )" 2>/dev/null \
            | sed -n 's/.*:\([0-9]*\) *127\.0\.0\.1:'"$DWOLLA_PORT"' .*pid=\([0-9]*\).*/\2 \1/p' >>"$1" || true
        sleep 0.1
    done
}

# ---------------------------------------------------------------------------- CPU time
# ticks PID...: user+system clock ticks the processes used so far (0 for a gone one).
ticks() {
    local pid t=0 v
    for pid in "$@"; do
        v="$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null)" || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
# pg_ticks_snapshot FILE: "pid ticks" of every postgres process now.
pg_ticks_snapshot() {
    local pid
    for pid in $(pgrep -x postgres || true); do echo "$pid $(ticks "$pid")"; done >"$1"
}
# pg_ticks_since FILE: ticks postgres processes used since the snapshot (new ones in full).
pg_ticks_since() {
    local now="$1.now"
    pg_ticks_snapshot "$now"
    awk 'NR == FNR { start[$1] = $2; next } { d = $2 - start[$1]; if (d > 0) t += d } END { print t + 0 }' "$1" "$now"
}
cpu_s() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'; }

# ---------------------------------------------------------------------------- per worker count
# bench_workers W
bench_workers() {
    local w=$1 dir="$WORK/w$w"
    mkdir -p "$dir"
    local before total
    before="$(q "SELECT count(*) FROM transfers")"
    total=$((before + TRANSFERS))

    log "W=$w: recording $TRANSFERS transfers ($PER_USER for each of $USERS users), no worker running"
    local tokens0 t_rec
    tokens0="$(sim_stat token_requests)"
    t_rec=$(now_ms)
    seq 1 "$USERS" | xargs -P 2 -I{} env "${APP_ENV[@]}" "$BIN" payments transfer \
        --user 'bench{}@example.com' --amount 1.00 --count "$PER_USER" \
        >"$dir/record.out" 2>"$dir/record.log" || { tail -n 20 "$dir/record.log" >&2; die "W=$w: recording failed"; }
    local rec_ms=$(($(now_ms) - t_rec))
    local recorded queued
    recorded="$(q "SELECT count(*) FROM transfers WHERE status = 'pending' AND dwolla_id IS NULL")"
    queued="$(q "SELECT count(*) FROM jobs WHERE kind = 'send_transfer'")"
    [[ "$recorded" == "$TRANSFERS" && "$queued" == "$TRANSFERS" ]] \
        || die "W=$w: $recorded new transfers and $queued send_transfer jobs, expected $TRANSFERS"
    local tokens1 stats1
    tokens1="$(sim_stat token_requests)"
    stats1="$(curl -fsS "$DWOLLA_URL/__sim/stats")"
    log "W=$w: recorded in $(secs "$rec_ms") s ($(rate "$TRANSFERS" "$rec_ms")/s; $((tokens1 - tokens0)) tokens for $USERS operator processes)"

    local serve0 sim0
    serve0="$(ticks "$SERVER_PID")"
    sim0="$(ticks "$DWOLLA_PID")"
    pg_ticks_snapshot "$dir/pg-ticks"
    sample_connections "$dir/conns" &
    local sampler=$!
    local -a workers=()
    local j t_start
    t_start=$(now_ms)
    for ((j = 1; j <= w; j++)); do
        start_worker "$dir/worker-$j.log"
        workers+=("$WORKER_PID")
    done
    local sent=0 deadline=$((SECONDS + 600))
    while ((sent < total)); do
        ((SECONDS < deadline)) || die "W=$w: only $sent of $total transfers have a Dwolla id after 600 s"
        sleep 0.05
        sent="$(q "SELECT count(*) FROM transfers WHERE dwolla_id IS NOT NULL")"
    done
    local created_ms=$(($(now_ms) - t_start))
    log "W=$w: every transfer created at Dwolla after $(secs "$created_ms") s"

    # The webhooks of the creations are applied before processing starts.
    local t_drain
    t_drain=$(now_ms)
    wait_until 600 "W=$w: the queue to empty after the creations" queue_empty
    local drain_ms=$(($(now_ms) - t_drain))

    local t_sim calls=0 got processed_sum=0
    t_sim=$(now_ms)
    while :; do
        got="$(curl -fsS -X POST "$DWOLLA_URL/__sim/simulate" | jq -r '.total')"
        calls=$((calls + 1))
        ((got > 0)) || break
        processed_sum=$((processed_sum + got))
    done
    local done_count=0
    deadline=$((SECONDS + 600))
    while ((done_count < total)); do
        ((SECONDS < deadline)) || die "W=$w: only $done_count of $total transfers processed after 600 s"
        sleep 0.05
        done_count="$(q "SELECT count(*) FROM transfers WHERE status = 'processed'")"
    done
    local tracked_ms=$(($(now_ms) - t_sim))
    log "W=$w: the simulator processed $processed_sum in $calls calls; all processed in our database after $(secs "$tracked_ms") s"
    local t_settle
    t_settle=$(now_ms)
    wait_until 600 "W=$w: the queue to empty after processing" queue_empty
    local settle_ms=$(($(now_ms) - t_settle))

    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local stats2
    stats2="$(curl -fsS "$DWOLLA_URL/__sim/stats")"
    local cpu_workers cpu_serve cpu_sim cpu_pg
    cpu_workers="$(cpu_s "$(ticks "${workers[@]}")")"
    cpu_serve="$(cpu_s $(($(ticks "$SERVER_PID") - serve0)))"
    cpu_sim="$(cpu_s $(($(ticks "$DWOLLA_PID") - sim0)))"
    cpu_pg="$(cpu_s "$(pg_ticks_since "$dir/pg-ticks")")"
    for j in "${workers[@]}"; do stop_pid "$j" worker; done
    local wall_s
    wall_s="$(secs $(($(now_ms) - t_start)))"
    CPU_LINES+=("$(printf 'W=%s  %6s s wall: CPU s workers %s, serve %s, Dwolla simulator %s, postgres %s (load avg %s)' \
        "$w" "$wall_s" "$cpu_workers" "$cpu_serve" "$cpu_sim" "$cpu_pg" "$(cut -d' ' -f1 /proc/loadavg)")")

    local tokens rejected webhooks conns per_worker_max
    tokens=$(($(jq -r .token_requests <<<"$stats2") - $(jq -r .token_requests <<<"$stats1")))
    rejected=$(($(jq -r .rejected_tokens <<<"$stats2") - $(jq -r .rejected_tokens <<<"$stats1")))
    webhooks=$(($(jq -r .webhook_attempts <<<"$stats2") - $(jq -r .webhook_attempts <<<"$stats1")))
    # Distinct connections the worker processes held to the simulator.
    local pids_re
    pids_re="^($(IFS='|'; echo "${workers[*]}")) "
    conns="$(grep -E "$pids_re" "$dir/conns" 2>/dev/null | sort -u | wc -l)"
    per_worker_max="$(grep -E "$pids_re" "$dir/conns" 2>/dev/null | sort -u | awk '{ n[$1]++ } END { m = 0; for (p in n) if (n[p] > m) m = n[p]; print m }')"

    local failed_transfers failed_jobs retries
    failed_transfers="$(q "SELECT count(*) FROM transfers WHERE status = 'failed'")"
    failed_jobs="$(q "SELECT count(*) FROM jobs WHERE status = 'failed'")"
    retries="$(cat "$dir"/worker-*.log | strip_ansi | grep -c 'will retry' || true)"
    [[ "$failed_transfers" == 0 ]] || surprise "W=$w: $failed_transfers failed transfers"
    [[ "$failed_jobs" == 0 ]] || surprise "W=$w: $failed_jobs parked jobs"
    [[ "$retries" == 0 ]] || surprise "W=$w: $retries job attempts failed and were retried (see worker logs)"
    [[ "$rejected" == 0 ]] || surprise "W=$w: the simulator refused $rejected requests for their token"
    for j in "$dir"/worker-*.log; do check_log "W=$w $(basename "$j")" "$j"; done

    local created_rate tracked_rate
    created_rate="$(rate "$TRANSFERS" "$created_ms")"
    tracked_rate="$(rate "$TRANSFERS" "$tracked_ms")"
    eval "CREATED_$w=$created_rate TRACKED_$w=$tracked_rate"
    ROWS+=("$(printf '%3s %7s %9s %10s %9s %10s %8s %8s %7s %9s %8s' \
        "$w" "$TRANSFERS" "$(secs "$created_ms")" "$created_rate" "$(secs "$tracked_ms")" "$tracked_rate" \
        "$(secs "$drain_ms")" "$(secs "$settle_ms")" "$tokens" "$conns/$per_worker_max" "$webhooks")")
}

for w in $WORKER_COUNTS; do bench_workers "$w"; done
check_log serve "$SERVE_LOG"

# ---------------------------------------------------------------------------- baseline
# The simulator alone: POST /transfers (no idempotency key) from the first user's bank to the
# Donkies balance, with one token, at 1 and 4 connections, its webhooks paused.
log "baseline: wrk POST /transfers straight at the simulator"
SRC="$(q "SELECT source_funding_source FROM transfers LIMIT 1")"
DST="$(q "SELECT destination FROM transfers LIMIT 1")"
SIM_TOKEN="$(curl -fsS -X POST "$DWOLLA_URL/token" -u donkies-sandbox-dwolla-key:donkies-sandbox-dwolla-secret \
    -H 'Content-Type: application/x-www-form-urlencoded' -d grant_type=client_credentials | jq -r .access_token)"
HAL='application/vnd.dwolla.v1.hal+json'
# Pause our webhook subscription: the baseline's transfers would otherwise load the server.
SUB="$(curl -fsS -H "Accept: $HAL" -H "Authorization: Bearer $SIM_TOKEN" "$DWOLLA_URL/webhook-subscriptions" \
    | jq -r '._embedded["webhook-subscriptions"][0].id')"
curl -fsS -o /dev/null -X POST "$DWOLLA_URL/webhook-subscriptions/$SUB" -H "Accept: $HAL" -H "Content-Type: $HAL" \
    -H "Authorization: Bearer $SIM_TOKEN" -d '{"paused": true}' || die "could not pause webhook subscription $SUB"
cat >"$WORK/transfer.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/vnd.dwolla.v1.hal+json"
wrk.headers["Accept"] = "application/vnd.dwolla.v1.hal+json"
wrk.headers["Authorization"] = "Bearer $SIM_TOKEN"
wrk.body = '{"_links":{"source":{"href":"${DWOLLA_URL}/funding-sources/$SRC"},"destination":{"href":"${DWOLLA_URL}/funding-sources/$DST"}},"amount":{"currency":"USD","value":"1.00"}}'
EOF
code="$(curl -sS -o "$WORK/probe.json" -w '%{http_code}' -X POST "$DWOLLA_URL/transfers" \
    -H 'Content-Type: application/vnd.dwolla.v1.hal+json' -H 'Accept: application/vnd.dwolla.v1.hal+json' \
    -H "Authorization: Bearer $SIM_TOKEN" \
    -d "{\"_links\":{\"source\":{\"href\":\"$DWOLLA_URL/funding-sources/$SRC\"},\"destination\":{\"href\":\"$DWOLLA_URL/funding-sources/$DST\"}},\"amount\":{\"currency\":\"USD\",\"value\":\"1.00\"}}")"
[[ "$code" == 201 ]] || die "baseline probe POST /transfers: HTTP $code $(cat "$WORK/probe.json")"
declare -A RAW=()
for c in 1 4; do
    run_wrk "$WORK/raw-$c" -t1 -c"$c" -d5s -s "$WORK/transfer.lua" "$DWOLLA_URL/transfers"
    check_wrk baseline "POST /transfers c=$c" "$WORK/raw-$c"
    RAW[$c]="$(wrk_rps "$WORK/raw-$c")"
done

# ---------------------------------------------------------------------------- report
first="${WORKER_COUNTS%% *}"
last="${WORKER_COUNTS##* }"
echo
echo "donkies payments benchmark  (nproc: $(nproc); PostgreSQL; $USERS users, $TRANSFERS transfers per run; job poll ${JOB_POLL_MS} ms)"
printf '%3s %7s %9s %10s %9s %10s %8s %8s %7s %9s %8s\n' \
    W transfers "create s" "created/s" "track s" "tracked/s" "drain s" "settle s" tokens "conns/max" webhooks
for row in "${ROWS[@]}"; do echo "$row"; done
if [[ "$first" != "$last" ]]; then
    c1="CREATED_$first" c4="CREATED_$last" t1="TRACKED_$first" t4="TRACKED_$last"
    echo "W=$last / W=$first: created $(ratio "${!c4}" "${!c1}"), tracked $(ratio "${!t4}" "${!t1}")"
fi
printf 'baseline   simulator POST /transfers alone: %s req/s at 1 connection, %s at 4\n' "${RAW[1]}" "${RAW[4]}"
c1="CREATED_$first" c4="CREATED_$last"
echo "created/s vs baseline: W=$first $(ratio_pct "${!c1}" "${RAW[1]}") of 1 connection, W=$last $(ratio_pct "${!c4}" "${RAW[4]}") of 4"
echo "create: W workers started -> every transfer has a Dwolla id (send_transfer: POST /transfers + GET, our rows)"
echo "track:  first POST /__sim/simulate -> every transfer processed in our database (webhooks -> apply jobs)"
echo "drain/settle: the queue emptied after the creations / after processing (event jobs, mail)"
echo "tokens: tokens the simulator issued while the workers ran (goal ~1 per worker process);"
echo "conns/max: distinct connections the workers held to the simulator, all / most by one worker"
echo "webhooks: deliveries the simulator attempted in the run (retries included)"
echo "CPU time from workers started to queue empty after processing (2 cores shared with whatever else runs):"
for line in "${CPU_LINES[@]}"; do echo "  $line"; done
print_surprises
