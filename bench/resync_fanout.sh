#!/usr/bin/env bash
# Benchmark of the hourly re-sync under a provider's rate limit, on PostgreSQL: against a
# standalone Atrium simulator answering after LATENCY_MS, with every call to it through the
# shared budget of RATE calls a second (DONKIES_ATRIUM_CALLS_PER_SECOND), MEMBERS linked members
# are re-synced by one job worker (DONKIES_WORKER_CONCURRENCY jobs at once) through the real
# hourly path: `resync_members` enqueues one `resync_member` job per member.
#
# Runs the release example crates/server/examples/resync_fanout.rs on a fresh database: setup
# (untimed, no limit), then a member linked on the idle worker (timed), then the re-sync with a
# member linked meanwhile (timed). Prints the re-sync's wall time against the limit's bound
# (the calls it made / RATE; goal: within 15 %), and the two link times (goal: the busy one as
# fast as the idle one).
#
#   bash bench/resync_fanout.sh
#   BENCH_FANOUT_MEMBERS=2000 BENCH_FANOUT_RATE=200 BENCH_FANOUT_LATENCY_MS=50 bash bench/resync_fanout.sh
set -euo pipefail

MEMBERS="${BENCH_FANOUT_MEMBERS:-10000}"
RATE="${BENCH_FANOUT_RATE:-200}"
LATENCY_MS="${BENCH_FANOUT_LATENCY_MS:-50}"
CONCURRENCY="${BENCH_FANOUT_CONCURRENCY:-16}"
ROWS="${BENCH_FANOUT_ROWS:-20}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN_BIN="$(build_example resync_fanout "the re-sync fan-out run")"

pg_check
[[ -z "$PG_SKIPPED" ]] || die "PostgreSQL is needed: $PG_SKIPPED"
pg_fresh_db
start_atrium_sim 5
sim_settings "{\"transactions_per_member\": $ROWS}" >&2

log "linking $MEMBERS members, then the re-sync at $RATE calls/s with ${LATENCY_MS} ms latency"
OUT="$WORK/run.out"
env DATABASE_URL="$PG_URL" DONKIES_DATA_DIR="$WORK" DONKIES_SECRET_KEY="$SECRET_KEY" \
    "${SIM_ENV[@]}" DONKIES_MEMBER_POLL_MS=50 \
    DONKIES_ATRIUM_CALLS_PER_SECOND="$RATE" DONKIES_WORKER_CONCURRENCY="$CONCURRENCY" \
    BENCH_FANOUT_MEMBERS="$MEMBERS" BENCH_FANOUT_LATENCY_MS="$LATENCY_MS" BENCH_FANOUT_ATRIUM_URL="$SIM_URL" \
    "$RUN_BIN" >"$OUT" 2>"$WORK/run.log" || { tail -n 30 "$WORK/run.log" >&2; die "the run failed"; }
LINE="$(grep '^members=' "$OUT")" || die "no result line: $(cat "$OUT")"
value() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$LINE"; }

echo
echo "donkies re-sync fan-out  (nproc: $(nproc); PostgreSQL; $MEMBERS members of $ROWS rows; $CONCURRENCY jobs at once)"
echo "limit: $RATE calls/s to Atrium, shared; simulator latency ${LATENCY_MS} ms"
echo "calls: $(value calls)  wall: $(value seconds) s  bound (calls / rate): $(value bound) s  wall/bound: $(awk -v w="$(value seconds)" -v b="$(value bound)" 'BEGIN { printf "%.3f", w / b }')"
echo "a member linked on the idle worker: $(value idle_link_ms) ms; during the re-sync: $(value busy_link_ms) ms"
echo "goal: wall within 15 % of the bound; the busy link as fast as the idle one"
print_surprises
