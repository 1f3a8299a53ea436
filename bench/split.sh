#!/usr/bin/env bash
# Micro-benchmark of the payout split: builds the domain crate's `split_bench` example in release
# and runs it. It generates USERS users (default 1,000,000; seeded, so the same data every run)
# with a held total of $5.00 to $500.00 and 1 to 5 debt shares summing to 100, and prints, best
# of 5 runs each:
#   a plain sum over the same data (totals + shares + share counts): the baseline;
#   a per-user walk that adds up each user's total and shares without splitting;
#   split_into over every user with one reused buffer, and split_by_shares (a new Vec each);
# with users/s and the ratios to the baseline and to the walk (goal: split_into < 3x the baseline).
# Then the same users laid out as a payout run reads them, grouped by share count (1 to 5) with
# each group in columns (built untimed), and with the ratios to that layout's own baseline:
#   a plain sum over the columns (every total + every share): the columnar baseline;
#   storing every part without splitting (each user's total into each of their parts);
#   split_batch over every group into one output array for all the parts (goal: < 3x);
#   split_batch a 4096-user chunk at a time into one reused buffer (the parts stay in cache).
#
#   bash bench/split.sh
#   bash bench/split.sh 100000
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
USERS="${1:-1000000}"

log() { printf '== %s\n' "$*" >&2; }

[[ "$USERS" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bash bench/split.sh [USERS]" >&2; exit 2; }

log "building the split benchmark (release, donkies-domain only)"
(cd "$ROOT" && cargo build --release -p donkies-domain --example split_bench)

log "splitting for $USERS users"
echo
"$ROOT/target/release/examples/split_bench" "$USERS"
echo "nproc: $(nproc) (a shared machine: the times vary from run to run; each is the best of 5)"
