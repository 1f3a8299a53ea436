#!/usr/bin/env bash
# Latency between processes on one PostgreSQL database: two `serve` servers (A without a
# worker, B with one) on a fresh database and one standalone Atrium simulator, each with its own pool and listening connection,
# run by the release example crates/server/examples/cross_process.rs; first with
# DONKIES_PG_LISTEN=off (polling: an idle worker looks every DONKIES_JOB_POLL_MS, a `?wait=`
# request re-reads every half second), then on (LISTEN/NOTIFY). Medians and p99 of TURNS turns:
#   job pick-up: a job committed on A until B's worker ran it;
#   long-poll: a member's status committed on A until B answers GET /v1/members/{id}?wait=30;
#   revocation: how long a sign-out on A takes to answer, and how many of B's next requests
#   still took the ended session (stale; must be 0).
# Goal: pick-up and long-poll within 50 ms median of the commit.
#
#   bash bench/cross_process.sh
#   BENCH_CROSS_TURNS=50 bash bench/cross_process.sh
set -euo pipefail

TURNS="${BENCH_CROSS_TURNS:-30}"

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUN_BIN="$(build_example cross_process "the cross-process latency run")"

pg_check
[[ -z "$PG_SKIPPED" ]] || die "PostgreSQL is needed: $PG_SKIPPED"
pg_fresh_db
# One Atrium for both servers, as processes on one database share one.
start_atrium_sim 5
OUT="$WORK/run.out"
env DATABASE_URL="$PG_URL" DONKIES_DATA_DIR="$WORK" DONKIES_SECRET_KEY="$SECRET_KEY" \
    "${SIM_ENV[@]}" BENCH_CROSS_TURNS="$TURNS" \
    "$RUN_BIN" >"$OUT" 2>"$WORK/run.log" || { tail -n 30 "$WORK/run.log" >&2; die "the run failed"; }

echo
echo "donkies cross-process latency  (nproc: $(nproc); PostgreSQL; 2 servers on one database; $TURNS turns)"
printf '%-8s %-11s %10s %10s %s\n' mode what median_ms p99_ms stale
sed -n 's/^mode=\([a-z]*\) what=\([a-z_]*\) median_ms=\([0-9.]*\) p99_ms=\([0-9.]*\) turns=[0-9]*\( stale=\([0-9]*\)\)\{0,1\}$/\1 \2 \3 \4 \6/p' "$OUT" \
    | while read -r mode what median p99 stale; do
        printf '%-8s %-11s %10s %10s %s\n' "$mode" "$what" "$median" "$p99" "${stale:-}"
    done
echo "goal: job pick-up and long-poll within 50 ms median of the commit with notify; stale always 0"
print_surprises
