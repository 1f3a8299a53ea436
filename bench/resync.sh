#!/usr/bin/env bash
# Benchmark of the re-sync of linked banks on PostgreSQL: MEMBERS members of ROWS transactions
# each, synced again by the server's own `BankingService::pull_transactions`, in rows/s, with
# about 10 % of each member's rows changed at the aggregator before the sync (churn) against the
# same sync when nothing changed (baseline), measured in the same run. Goal: churn >= 70 % of
# baseline.
#
# Builds the release example crates/server/examples/resync_run.rs and runs it on a fresh
# PostgreSQL database (migrated by the server's own code when it opens it). The example starts
# an Atrium simulator in process (ROWS transactions per member), signs up MEMBERS users, links
# one mxbank member each and polls it to COMPLETED (its first ingest), adds a pool of pending
# purchases per member (2 % of ROWS, taken in by one more sync; untimed). Then ROUNDS rounds of:
#   1. baseline: every member aggregated again at the simulator (untimed), then
#      pull_transactions of every member, CONCURRENCY at a time (the hourly re-sync takes one
#      at a time): rows fetched / seconds;
#   2. churn: per member, events on 10 % of ROWS at the simulator (two fifths new pending
#      purchases, a fifth posts of pending rows with a new amount, a fifth drops of pending
#      rows, a tenth removes and a tenth amends of posted rows), every member aggregated again
#      (untimed), then the same timed sync: rows fetched / seconds.
# Medians over the rounds, the ratio churn/baseline, what the syncs reported (added, posted,
# removed, amended) and where the time went, from the syncs' own "transactions synced" log
# lines: fetch_ms (the aggregator's pages), store_ms (compare and write, one transaction) and
# the rest (the sync lease taken and released around them).
#
#   bash bench/resync.sh
#   BENCH_POSTGRES_URL=postgres://USER@HOST:5432/postgres bash bench/resync.sh
#   BENCH_RESYNC_MEMBERS=50 BENCH_RESYNC_ROWS=500 BENCH_RESYNC_ROUNDS=3 bash bench/resync.sh
#   BENCH_RESYNC_CONCURRENCY=4 bash bench/resync.sh
set -euo pipefail

export BENCH_RESYNC_MEMBERS="${BENCH_RESYNC_MEMBERS:-1000}"
export BENCH_RESYNC_ROWS="${BENCH_RESYNC_ROWS:-500}"
export BENCH_RESYNC_ROUNDS="${BENCH_RESYNC_ROUNDS:-3}"
export BENCH_RESYNC_CONCURRENCY="${BENCH_RESYNC_CONCURRENCY:-1}"
GOAL=0.70

BENCH_EXAMPLE_ONLY=1
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pg_check
[[ -z "$PG_SKIPPED" ]] || die "this benchmark needs PostgreSQL: $PG_SKIPPED"

RESYNC_BIN="$(build_example resync_run "the re-sync run")"

pg_fresh_db
mkdir -p "$WORK/data"
log "re-sync run: $BENCH_RESYNC_MEMBERS members x $BENCH_RESYNC_ROWS transactions, $BENCH_RESYNC_ROUNDS rounds," \
    "database $PG_DB"
OUT="$WORK/resync.out"
env DONKIES_DATA_DIR="$WORK/data" DATABASE_URL="$PG_URL" DONKIES_SECRET_KEY="$SECRET_KEY" \
    "$RESYNC_BIN" >"$OUT" 2>"$WORK/resync.err" \
    || { tail -n 20 "$WORK/resync.err" "$OUT" >&2; die "the re-sync run failed"; }
check_log resync_run "$OUT"
check_log resync_run "$WORK/resync.err"

# ---------------------------------------------------------------------------- figures
SETUP="$(grep '^setup ' "$OUT" | tail -n1)"
[[ -n "$SETUP" ]] || { tail -n 20 "$OUT" >&2; die "the re-sync run printed no setup line"; }
field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }

# Per phase and round: rows, syncs, and the sums of fetch_ms and store_ms of its syncs' log lines.
strip_ansi "$OUT" | awk '
    /bench phase started/ {
        match($0, /phase="[a-z]+"/); p = substr($0, RSTART + 7, RLENGTH - 8)
        match($0, /round=[0-9]+/); key = p " " substr($0, RSTART + 6, RLENGTH - 6)
    }
    /bench phase ended/ { key = "" }
    /transactions synced/ && key != "" {
        match($0, /fetch_ms=[0-9]+/); f[key] += substr($0, RSTART + 9, RLENGTH - 9)
        match($0, /store_ms=[0-9]+/); s[key] += substr($0, RSTART + 9, RLENGTH - 9)
        match($0, /rows=[0-9]+/); r[key] += substr($0, RSTART + 5, RLENGTH - 5)
        n[key]++
    }
    END { for (k in n) print k, n[k], f[k], s[k], r[k] }' >"$WORK/logged"

declare -A RATES=() FETCH=() STORE=() OTHER=() SECS=() ROWS_OF=()
ROUND_LINES=()
for phase in baseline churn; do
    rates=() fetches=() stores=() others=() secs=() rows=()
    while read -r line; do
        round="$(field "$line" round)"
        s="$(field "$line" seconds)"
        r="$(field "$line" rows)"
        read -r _ _ synced f st logged_rows < <(grep "^$phase $round " "$WORK/logged") \
            || die "no transactions synced lines logged for $phase round $round"
        [[ "$synced" == "$BENCH_RESYNC_MEMBERS" ]] || surprise "$phase round $round: $synced syncs logged"
        [[ "$logged_rows" == "$r" ]] || surprise "$phase round $round: the syncs logged $logged_rows rows, expected $r"
        rate="$(awk -v n="$r" -v s="$s" 'BEGIN { printf "%.0f", n / s }')"
        other="$(awk -v s="$s" -v f="$f" -v st="$st" 'BEGIN { printf "%.0f", s * 1000 - f - st }')"
        rates+=("$rate") fetches+=("$f") stores+=("$st") others+=("$other") secs+=("$s") rows+=("$r")
        ROUND_LINES+=("$line rows_per_s=$rate fetch_ms=$f store_ms=$st")
    done < <(grep "^phase=$phase " "$OUT")
    ((${#rates[@]} == BENCH_RESYNC_ROUNDS)) || die "$phase: ${#rates[@]} rounds printed"
    RATES[$phase]="$(median "${rates[@]}")"
    FETCH[$phase]="$(median "${fetches[@]}")"
    STORE[$phase]="$(median "${stores[@]}")"
    OTHER[$phase]="$(median "${others[@]}")"
    SECS[$phase]="$(median "${secs[@]}")"
    ROWS_OF[$phase]="$(median "${rows[@]}")"
done

RATIO="$(awk -v a="${RATES[churn]}" -v b="${RATES[baseline]}" 'BEGIN { printf "%.3f", a / b }')"
MET="$(awk -v r="$RATIO" -v g="$GOAL" 'BEGIN { print (r >= g) ? "met" : "NOT met" }')"

# A churn round must show every kind of change.
while read -r line; do
    for kind in added posted removed amended; do
        [[ "$(field "$line" "$kind")" -gt 0 ]] || surprise "$(cut -d' ' -f1-2 <<<"$line"): no rows $kind"
    done
done < <(grep '^phase=churn ' "$OUT")
while read -r line; do
    for kind in added posted removed amended; do
        [[ "$(field "$line" "$kind")" == 0 ]] || surprise "$(cut -d' ' -f1-2 <<<"$line"): rows $kind"
    done
done < <(grep '^phase=baseline ' "$OUT")

# ---------------------------------------------------------------------------- report
echo
echo "donkies re-sync benchmark  (nproc: $(nproc); PostgreSQL; $BENCH_RESYNC_MEMBERS members x" \
    "$BENCH_RESYNC_ROWS transactions; $BENCH_RESYNC_CONCURRENCY member(s) at a time; medians of" \
    "$BENCH_RESYNC_ROUNDS rounds; setup $(field "$SETUP" seconds) s)"
printf '%-30s %9s %9s %9s %7s %10s %10s %10s\n' "" rows seconds "rows/s" ratio fetch_ms store_ms other_ms
printf '%-30s %9s %9s %9s %7s %10s %10s %10s\n' "baseline (no churn)" "${ROWS_OF[baseline]}" \
    "${SECS[baseline]}" "${RATES[baseline]}" "1.000" "${FETCH[baseline]}" "${STORE[baseline]}" "${OTHER[baseline]}"
printf '%-30s %9s %9s %9s %7s %10s %10s %10s\n' "churn (10 % of rows per sync)" "${ROWS_OF[churn]}" \
    "${SECS[churn]}" "${RATES[churn]}" "$RATIO" "${FETCH[churn]}" "${STORE[churn]}" "${OTHER[churn]}"
echo "ratio churn/baseline: $RATIO (goal >= $GOAL: $MET)"
echo "rounds:"
for line in "${ROUND_LINES[@]}"; do echo "  $line"; done
echo "rows: rows the aggregator returned to the syncs of the phase (ROWS generated, a pool of pending"
echo "  purchases, and what the churn added and removed so far); events: the churn applied before the phase"
echo "fetch_ms, store_ms: sums over the phase's syncs of their \"transactions synced\" log fields; other_ms:"
echo "  the phase's wall time less both (sync lease, per-member overhead; meaningful at concurrency 1)"
print_surprises
