#!/usr/bin/env bash
# Benchmark of the money loop's collection run on PostgreSQL: USERS users with ROUNDUPS
# purchases each, collected by the code `donkies collect` runs (Services::collect_all), in
# users/s, against the engine's bulk loader writing the same rows; then `donkies ledger check`
# over that data, in seconds.
#
# Builds a release `donkies` and the example crates/server/examples/collect_run.rs (the
# operator's services, built as `donkies collect` builds them, around one timed
# collect_all(false, ..): it neither waits for a worker nor follows the transfers to Dwolla as
# the command does). Starts `donkies sandbox dwolla` (the Donkies Account's funding source is
# looked up there, once), migrates a fresh PostgreSQL database with `donkies migrate` and seeds
# it with SQL: per user a member, a checking account (debit, the round-up source), a verified
# personal customer and a verified funding source at "Dwolla", and ROUNDUPS DEBIT purchases of
# non-whole amounts (every user's round-ups pass the $5.00 collection minimum). Then:
#   1. collection: collect_run; every user must get one collection (users/s);
#   2. baseline: the rows the run wrote to the ledger (ledger_entries: the round-ups,
#      ledger_pending: the collections, ledger_balances) copied out, then loaded with psql's
#      \copy into empty copies of those tables (indexes and checks included) in a fresh schema,
#      in one transaction; and the same for every row the run wrote (also roundups,
#      collections, collection_parts, transfers, jobs). Users/s-equivalent = USERS / seconds;
#   3. `donkies ledger check --no-provider` over the collected data: seconds (it must print
#      "ledger balanced").
#
#   bash bench/money.sh
#   BENCH_POSTGRES_URL=postgres://USER@HOST:5432/postgres bash bench/money.sh
#   BENCH_MONEY_USERS=10000 BENCH_MONEY_ROUNDUPS=50 bash bench/money.sh
set -euo pipefail

USERS="${BENCH_MONEY_USERS:-10000}"
ROUNDUPS="${BENCH_MONEY_ROUNDUPS:-50}"
WORKERS="${BENCH_MONEY_WORKERS:-2}"
export BENCH_MONEY_WORKERS="$WORKERS"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

((USERS > 0 && ROUNDUPS > 0)) || die "need BENCH_MONEY_USERS > 0 and BENCH_MONEY_ROUNDUPS > 0"
pg_check
[[ -z "$PG_SKIPPED" ]] || die "this benchmark needs PostgreSQL: $PG_SKIPPED"

MONEY_BIN="$(build_example money_run "the money runs")"

# ---------------------------------------------------------------------------- helpers
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.1f", n / (ms / 1000); else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
q() { psql "$PG_URL" -qAtX -v ON_ERROR_STOP=1 -c "$1"; }

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

# ---------------------------------------------------------------------------- simulator, database
DWOLLA_LOG="$WORK/dwolla.log"
"$BIN" sandbox dwolla --listen "127.0.0.1:$(free_port)" >"$DWOLLA_LOG" 2>&1 &
DWOLLA_PID=$!
track_pid "$DWOLLA_PID"
DWOLLA_URL="$(wait_url "$DWOLLA_LOG" "$DWOLLA_PID" 'Dwolla simulator listening on')"
log "Dwolla simulator at $DWOLLA_URL"

pg_fresh_db
mkdir -p "$WORK/data"
APP_ENV=(
    DONKIES_DATA_DIR="$WORK/data"
    DATABASE_URL="$PG_URL"
    DONKIES_SECRET_KEY="$SECRET_KEY"
    DONKIES_DWOLLA_URL="$DWOLLA_URL"
    DONKIES_DWOLLA_KEY=donkies-sandbox-dwolla-key
    DONKIES_DWOLLA_SECRET=donkies-sandbox-dwolla-secret
)
env "${APP_ENV[@]}" "$BIN" migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "migrate failed"; }
log "database $PG_DB migrated"

# ---------------------------------------------------------------------------- seed
# Ids are small integers (users, members, accounts, customers and funding sources share the
# user's number; purchase k of user u is (u - 1) * ROUNDUPS + k), far below the program's ids.
# A purchase's amount is $1.01-$99.99 and never whole: its round-up is 1-99 cents, about
# ROUNDUPS / 2 dollars per user in all.
log "seeding $USERS users with $ROUNDUPS purchases each"
t0=$(now_ms)
psql "$PG_URL" -qAtX -v ON_ERROR_STOP=1 -v users="$USERS" -v roundups="$ROUNDUPS" >/dev/null <<'SQL'
BEGIN;
INSERT INTO institutions (id, code, name, created_at, updated_at)
VALUES (1, 'benchbank', 'Bench Bank', now(), now());
INSERT INTO users (id, email, password_hash, first_name, last_name, identifier, encrypted_id, is_confirmed,
                   is_profile_completed, created_at, updated_at)
SELECT u, 'bench' || u || '@example.com', 'x', 'Bench', 'User' || u, 'bench-user-' || u, 'bench-enc-' || u, TRUE,
       TRUE, now(), now()
FROM generate_series(1, :users) AS u;
INSERT INTO members (id, user_id, institution_id, identifier, name, status, created_at, updated_at)
SELECT u, u, 1, 'bench-member-' || u, 'Bench Bank', 'COMPLETED', now(), now()
FROM generate_series(1, :users) AS u;
-- A fresh balance well above the overdraft floor: the guard lets every collection go.
INSERT INTO accounts (id, user_id, member_id, guid, uid, name, kind, type_ds, is_active,
                      is_funding_source_for_transfer, available_balance, balance_at, created_at, updated_at)
SELECT u, u, u, 'ACT-' || u, 'bench-account-' || u, 'Checking', 'CHECKING', 'debit', TRUE, TRUE, 1000000, now(),
       now(), now()
FROM generate_series(1, :users) AS u;
INSERT INTO customers (id, user_id, kind, dwolla_id, status, first_name, last_name, email, created_at, updated_at)
SELECT u, u, 'personal', 'bench-customer-' || u, 'verified', 'Bench', 'User' || u, 'bench' || u || '@example.com',
       now(), now()
FROM generate_series(1, :users) AS u;
INSERT INTO funding_sources (id, user_id, account_id, customer_id, dwolla_id, status, bank_account_type, source_type,
                             name, verification_type, created_at, updated_at)
SELECT u, u, u, u, 'bench-source-' || u, 'verified', 'checking', 'bank', 'Checking', 'iav', now(), now()
FROM generate_series(1, :users) AS u;
-- Two debts to pay out to, 60/40: a card with a verified funding source at "Dwolla" (paid by
-- transfer) and a loan without one (paid by hand).
INSERT INTO accounts (id, user_id, member_id, guid, uid, name, kind, type_ds, is_active, transfer_share,
                      created_at, updated_at)
SELECT d * :users + u, u, u, 'ACT-' || u || '-' || d, 'bench-debt-' || u || '-' || d,
       CASE d WHEN 1 THEN 'Card' ELSE 'Loan' END, CASE d WHEN 1 THEN 'CREDIT_CARD' ELSE 'LOAN' END, 'debt', TRUE,
       CASE d WHEN 1 THEN 60 ELSE 40 END, now(), now()
FROM generate_series(1, :users) AS u, generate_series(1, 2) AS d;
INSERT INTO funding_sources (id, user_id, account_id, customer_id, dwolla_id, status, bank_account_type, source_type,
                             name, verification_type, created_at, updated_at)
SELECT :users + u, u, :users + u, u, 'bench-debt-source-' || u, 'verified', 'checking', 'bank', 'Card', 'iav',
       now(), now()
FROM generate_series(1, :users) AS u;
INSERT INTO transactions (id, user_id, account_id, guid, uid, amount, kind, status, description, date,
                          created_at, updated_at)
SELECT (u - 1) * :roundups + k, u, u, 'TRN-' || u || '-' || k, 'bench-trn-' || u || '-' || k,
       100 * (1 + (u * 7 + k * 13) % 99) + 1 + (u * 31 + k * 17) % 99, 'DEBIT', 'POSTED', 'Purchase',
       DATE '2025-01-01' + k % 28, now(), now()
FROM generate_series(1, :users) AS u, generate_series(1, :roundups) AS k;
COMMIT;
VACUUM ANALYZE;
SQL
SEED_MS=$(($(now_ms) - t0))
PURCHASES="$(q "SELECT count(*) FROM transactions")"
[[ "$PURCHASES" == $((USERS * ROUNDUPS)) ]] || die "$PURCHASES purchases seeded, expected $((USERS * ROUNDUPS))"
log "seeded in $(secs "$SEED_MS") s"

# ---------------------------------------------------------------------------- collection
log "collection run over $USERS users (money_run collect)"
COLLECT_OUT="$WORK/collect.out"
env "${APP_ENV[@]}" "$MONEY_BIN" collect >"$COLLECT_OUT" 2>"$WORK/collect.err" \
    || { tail -n 20 "$WORK/collect.err" "$COLLECT_OUT" >&2; die "the collection run failed"; }
RESULT="$(grep '^users=' "$COLLECT_OUT" | tail -n1)"
[[ -n "$RESULT" ]] || { tail -n 20 "$COLLECT_OUT" >&2; die "the collection run printed no result"; }
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$RESULT"; }
LOOKED="$(field users)"
SENT="$(field sent)"
COLLECT_S="$(field seconds)"
COLLECT_MS="$(awk -v s="$COLLECT_S" 'BEGIN { printf "%.0f", s * 1000 }')"
[[ "$LOOKED" == "$USERS" && "$SENT" == "$USERS" ]] \
    || die "the collection run looked at $LOOKED users and collected for $SENT, expected $USERS: $RESULT"
log "collected: $RESULT"
check_log money_run "$COLLECT_OUT"
check_log money_run "$WORK/collect.err"

ENTRIES="$(q "SELECT count(*) FROM ledger_entries")"
PENDING="$(q "SELECT count(*) FROM ledger_pending")"
BALANCES="$(q "SELECT count(*) FROM ledger_balances")"
GAVE="$(q "SELECT count(*) FROM roundups WHERE amount > 0")"
# One entry per round-up that gave money and one collect_start entry per collection; one
# pending collect entry per collection.
[[ "$ENTRIES" == $((GAVE + USERS)) && "$PENDING" == "$USERS" ]] \
    || die "ledger: $ENTRIES entries for $GAVE round-ups and $USERS collections, $PENDING pending entries"

# ---------------------------------------------------------------------------- baseline
# copy_baseline NAME TABLE...: \copy each table out of the collected database, then time one
# psql session that loads them all with \copy into empty copies (LIKE ... INCLUDING ALL: the
# indexes, unique keys and checks) in a fresh schema, in one transaction. Sets COPY_MS and
# COPY_ROWS.
# copy_baseline NAME SPEC...: each SPEC is a table, or TABLE@CONDITION for the rows that match;
# sets COPY_MS (the load of them all into empty copies, in one transaction) and COPY_ROWS.
copy_baseline() {
    local name=$1 spec t cond
    shift
    local script="$WORK/load-$name.sql" rows=0 n
    q "DROP SCHEMA IF EXISTS bench_copy CASCADE; CREATE SCHEMA bench_copy"
    for spec in "$@"; do
        t="${spec%%@*}"
        cond="TRUE"
        [[ "$spec" == *@* ]] && cond="${spec#*@}"
        psql "$PG_URL" -qAtX -v ON_ERROR_STOP=1 -c "\\copy (SELECT * FROM public.$t WHERE $cond) TO '$WORK/$t.copy'"
        q "CREATE TABLE bench_copy.$t (LIKE public.$t INCLUDING ALL)"
        n="$(q "SELECT count(*) FROM public.$t WHERE $cond")"
        rows=$((rows + n))
        eval "WANT_$t=$n"
    done
    {
        echo 'BEGIN;'
        for spec in "$@"; do echo "\\copy bench_copy.${spec%%@*} FROM '$WORK/${spec%%@*}.copy'"; done
        echo 'COMMIT;'
    } >"$script"
    local t0
    t0=$(now_ms)
    psql "$PG_URL" -qAtX -v ON_ERROR_STOP=1 -f "$script" >/dev/null
    COPY_MS=$(($(now_ms) - t0))
    COPY_ROWS=$rows
    for spec in "$@"; do
        t="${spec%%@*}"
        n="$(q "SELECT count(*) FROM bench_copy.$t")"
        local want="WANT_$t"
        [[ "$n" == "${!want}" ]] || die "baseline $name: $n rows loaded into $t, expected ${!want}"
    done
    q "DROP SCHEMA bench_copy CASCADE"
}

log "baseline: \\copy of the ledger rows the run wrote"
copy_baseline ledger ledger_entries ledger_pending ledger_balances
LEDGER_COPY_MS=$COPY_MS LEDGER_COPY_ROWS=$COPY_ROWS
log "baseline: \\copy of every row the run wrote"
JOBS="$(q "SELECT count(*) FROM jobs WHERE kind = 'send_transfer'")"
[[ "$JOBS" == "$USERS" ]] || surprise "$JOBS send_transfer jobs for $USERS collections"
copy_baseline all ledger_entries ledger_pending ledger_balances roundups collections collection_parts transfers jobs
ALL_COPY_MS=$COPY_MS ALL_COPY_ROWS=$COPY_ROWS

# ---------------------------------------------------------------------------- ledger check
log "donkies ledger check --no-provider"
t0=$(now_ms)
CHECK_RC=0
env "${APP_ENV[@]}" "$BIN" ledger check --no-provider >"$WORK/check.out" 2>"$WORK/check.err" || CHECK_RC=$?
CHECK_MS=$(($(now_ms) - t0))
if [[ "$CHECK_RC" != 0 ]] || ! grep -q '^ledger balanced' "$WORK/check.out"; then
    cat "$WORK/check.out" "$WORK/check.err" >&2
    die "ledger check exited $CHECK_RC without 'ledger balanced'"
fi
CHECK_SAID="$(sed -n 's/^took \(.*\) s$/\1/p' "$WORK/check.out")"

# ---------------------------------------------------------------------------- payout
# Dwolla processes every collection: the same rows the webhook writes, set-based (not timed).
log "every collection processed (SQL, as Dwolla's webhooks would)"
psql "$PG_URL" -qAtX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
BEGIN;
UPDATE collections SET status = 'processed', sent_at = now(), updated_at = now() WHERE status = 'pending';
UPDATE transfers SET status = 'processed', updated_at = now() WHERE reference LIKE 'collection:%';
INSERT INTO ledger_entries (id, key, kind, debit_account, credit_account, amount, user_id, pending_id, created_at)
SELECT (SELECT max(id) FROM ledger_entries) + row_number() OVER (ORDER BY id), key, kind, debit_account,
       credit_account, amount, user_id, id, now()
FROM ledger_pending WHERE state = 'pending' AND kind = 'collect';
UPDATE ledger_balances b SET posted = b.posted - s.a, pending_debits = b.pending_debits - s.a
FROM (SELECT debit_account AS account, sum(amount) AS a FROM ledger_pending
      WHERE state = 'pending' AND kind = 'collect' GROUP BY 1) s WHERE b.account = s.account;
UPDATE ledger_balances b SET posted = b.posted + s.a, pending_credits = b.pending_credits - s.a
FROM (SELECT credit_account AS account, sum(amount) AS a FROM ledger_pending
      WHERE state = 'pending' AND kind = 'collect' GROUP BY 1) s WHERE b.account = s.account;
UPDATE ledger_pending SET state = 'posted', resolved_at = now() WHERE state = 'pending' AND kind = 'collect';
COMMIT;
VACUUM ANALYZE;
SQL
PAYOUT_FROM="$(q "SELECT now()")"
log "payout run over $USERS users (money_run payout)"
PAYOUT_OUT="$WORK/payout.out"
env "${APP_ENV[@]}" "$MONEY_BIN" payout >"$PAYOUT_OUT" 2>"$WORK/payout.err" \
    || { tail -n 20 "$WORK/payout.err" "$PAYOUT_OUT" >&2; die "the payout run failed"; }
PRESULT="$(grep '^users=' "$PAYOUT_OUT" | tail -n1)"
pfield() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$PRESULT"; }
[[ "$(pfield users)" == "$USERS" && "$(pfield sent)" == "$USERS" ]] \
    || die "the payout run paid $(pfield sent) of $(pfield users) users, expected $USERS: $PRESULT"
PAYOUT_MS="$(awk -v s="$(pfield seconds)" 'BEGIN { printf "%.0f", s * 1000 }')"
log "paid out: $PRESULT"
check_log money_run "$PAYOUT_OUT"
check_log money_run "$WORK/payout.err"
PARTS="$(q "SELECT count(*) FROM payout_parts")"
[[ "$PARTS" == $((2 * USERS)) ]] || die "$PARTS payout parts for $USERS users, expected two each"
log "baseline: \\copy of every row the payout run wrote"
copy_baseline payout payouts payout_parts "ledger_pending@kind = 'payout'" \
    "ledger_balances@account LIKE '%:held' OR account LIKE '%:debt:%'" "transfers@reference LIKE 'payout:%'" \
    "jobs@created_at >= '$PAYOUT_FROM'"
PAYOUT_COPY_MS=$COPY_MS PAYOUT_COPY_ROWS=$COPY_ROWS
env "${APP_ENV[@]}" "$BIN" ledger check --no-provider >"$WORK/check2.out" 2>&1 \
    || { cat "$WORK/check2.out" >&2; die "the ledger check after the payout run failed"; }
grep -q '^ledger balanced' "$WORK/check2.out" || { cat "$WORK/check2.out" >&2; die "ledger off after the payout run"; }

# ---------------------------------------------------------------------------- report
COLLECT_RATE="$(rate "$USERS" "$COLLECT_MS")"
PAYOUT_RATE="$(rate "$USERS" "$PAYOUT_MS")"
PAYOUT_COPY_RATE="$(rate "$USERS" "$PAYOUT_COPY_MS")"
LEDGER_RATE="$(rate "$USERS" "$LEDGER_COPY_MS")"
ALL_RATE="$(rate "$USERS" "$ALL_COPY_MS")"
echo
echo "donkies money benchmark  (nproc: $(nproc); PostgreSQL; $USERS users x $ROUNDUPS round-ups; seeded in $(secs "$SEED_MS") s)"
printf '%-44s %9s %9s %10s %9s\n' "" rows seconds "users/s" "ratio"
printf '%-44s %9s %9s %10s %9s\n' "collection run (batches, $WORKERS claimers)" "$((ENTRIES + PENDING))" "$(secs "$COLLECT_MS")" \
    "$COLLECT_RATE" "1.000"
printf '%-44s %9s %9s %10s %9s\n' "\\copy of its ledger rows" "$LEDGER_COPY_ROWS" "$(secs "$LEDGER_COPY_MS")" \
    "$LEDGER_RATE" "$(ratio "$COLLECT_RATE" "$LEDGER_RATE")"
printf '%-44s %9s %9s %10s %9s\n' "\\copy of every row it wrote" "$ALL_COPY_ROWS" "$(secs "$ALL_COPY_MS")" \
    "$ALL_RATE" "$(ratio "$COLLECT_RATE" "$ALL_RATE")"
printf '%-44s %9s %9s\n' "donkies ledger check --no-provider" "$((ENTRIES + PENDING))" "$(secs "$CHECK_MS")"
printf '%-44s %9s %9s %10s %9s\n' "payout run (batches, $WORKERS claimers)" "$PAYOUT_COPY_ROWS" "$(secs "$PAYOUT_MS")" \
    "$PAYOUT_RATE" "1.000"
printf '%-44s %9s %9s %10s %9s\n' "\\copy of every row it wrote" "$PAYOUT_COPY_ROWS" "$(secs "$PAYOUT_COPY_MS")" \
    "$PAYOUT_COPY_RATE" "$(ratio "$PAYOUT_RATE" "$PAYOUT_COPY_RATE")"
echo "payout: $(pfield sent) payouts of $(awk -v c="$(pfield amount_cents)" 'BEGIN { printf "%.2f", c / 100 }') dollars, $PARTS parts (one by transfer, one by hand each)"
echo "collection: $SENT collections of $(awk -v c="$(field amount_cents)" 'BEGIN { printf "%.2f", c / 100 }') dollars in all;" \
    "the run wrote $ENTRIES ledger entries ($GAVE round-ups), $PENDING pending collect entries, $BALANCES balances"
echo "ratio: collection users/s / the \\copy's users/s-equivalent (users / its seconds)"
echo "ledger rows: ledger_entries + ledger_pending + ledger_balances; every row: also roundups, collections,"
echo "  collection_parts, transfers, jobs (\\copy into empty copies with their indexes, one transaction)"
echo "ledger check: the whole command, start-up included (it says it took $CHECK_SAID s)"
print_surprises
