# Shared helpers of the load benchmarks (bench/users.sh, bench/banking.sh, bench/payments.sh). Source it from a
# script that has `set -euo pipefail`:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sourcing sets ROOT, BIN, PG_ADMIN_URL, SECRET_KEY, DURATION, WORK (a temp dir), installs the
# EXIT/INT/TERM traps (stops the server and any process registered with track_pid, drops the
# databases made with pg_fresh_db, removes WORK), builds the release binary once and makes
# sure wrk and curl are there. A script that runs only a release example of its own sets
# BENCH_EXAMPLE_ONLY=1 before sourcing: then neither the binary nor those tools are needed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release/donkies"
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SECRET_KEY='bench-secret-key-0123456789abcdef0123456789'
DURATION=10s

WORK="$(mktemp -d "${TMPDIR:-/tmp}/donkies-bench.XXXXXX")"
SERVER_PID=""
declare -a PG_DBS=()
declare -a EXTRA_PIDS=()
declare -a SURPRISES=()

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
surprise() { log "WARNING $*"; SURPRISES+=("$*"); }

# Stop a process with SIGTERM and wait for it (it must be a child of this shell).
stop_pid() { # PID LABEL
    local pid=$1
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local status=0
        wait "$pid" || status=$?
        [[ $status -eq 0 ]] || log "$2 $pid exited with status $status"
    fi
}

stop_server() {
    stop_pid "$SERVER_PID" server
    SERVER_PID=""
}

# Register a background process to be stopped on exit.
track_pid() { EXTRA_PIDS+=("$1"); }

cleanup() {
    local rc=$?
    stop_server
    local pid db
    for pid in "${EXTRA_PIDS[@]}"; do stop_pid "$pid" process; done
    for db in "${PG_DBS[@]}"; do
        psql "$PG_ADMIN_URL" -qAt -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
            || log "could not drop database $db"
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------- build, tools
# need_tool TOOL: installs TOOL's package (of the same name) with apt-get when TOOL is missing.
need_tool() {
    if ! command -v "$1" >/dev/null 2>&1; then
        log "installing $1"
        if ! apt-get install -y "$1" >/dev/null 2>&1; then
            apt-get update >/dev/null
            apt-get install -y "$1" >/dev/null
        fi
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 is not available"
}

if [[ -z "${BENCH_EXAMPLE_ONLY:-}" ]]; then
    log "building release binary"
    (cd "$ROOT" && cargo build --release -p donkies-server)
    [[ -x "$BIN" ]] || die "no binary at $BIN"

    need_tool wrk
    command -v curl >/dev/null 2>&1 || die "curl is not available"
fi

# ---------------------------------------------------------------------------- helpers
# build_example NAME WHAT: builds the release example crates/server/examples/NAME.rs (WHAT
# names it in the log) and prints the path of its binary.
build_example() {
    log "building $2 (crates/server/examples/$1.rs)"
    (cd "$ROOT" && cargo build --release -p donkies-server --example "$1") >&2
    local bin="$ROOT/target/release/examples/$1"
    [[ -x "$bin" ]] || die "no $2 at $bin"
    echo "$bin"
}

strip_ansi() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }

# Value (kB) of a field of /proc/PID/status, printed in MiB with one decimal.
proc_mib() {
    awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# start_server NAME DATA_DIR DATABASE_URL [VAR=VALUE...]  -> sets SERVER_PID and BASE.
# The log goes to DATA_DIR/server.log; the extra VAR=VALUE pairs are added to the environment.
start_server() {
    local name=$1 data_dir=$2 db_url=$3 logf="$2/server.log"
    shift 3
    env DONKIES_DATA_DIR="$data_dir" \
        DATABASE_URL="$db_url" \
        DONKIES_SECRET_KEY="$SECRET_KEY" \
        DONKIES_LOGIN_RATE_PER_MINUTE=100000000 \
        "$@" \
        "$BIN" serve --listen 127.0.0.1:0 >"$logf" 2>&1 &
    SERVER_PID=$!
    BASE=""
    local i addr
    for ((i = 0; i < 300; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$logf" >&2; die "$name: server exited during start-up"; }
        addr="$(strip_ansi "$logf" | grep -o 'donkies listening on http://[0-9.:]*' | head -n1 | sed 's/.*http:\/\///')" || true
        if [[ -n "$addr" ]] && curl -fsS -o /dev/null "http://$addr/healthz" 2>/dev/null; then
            BASE="http://$addr"
            return 0
        fi
        sleep 0.1
    done
    cat "$logf" >&2
    die "$name: server did not answer /healthz within 30 s"
}

# signup_one BASE I [PASSWORD]: signs up bench<I>@example.com (204 expected).
signup_one() {
    local code pw="${3:-$PASSWORD}"
    code="$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$1/v1/auth/signup" \
        -H 'Content-Type: application/json' \
        -d "{\"email\":\"bench$2@example.com\",\"password\":\"$pw\",\"first_name\":\"Bench\",\"last_name\":\"User$2\"}")"
    [[ "$code" == 204 ]] || { echo "signup bench$2: HTTP $code" >&2; return 1; }
}
export -f signup_one

# login BASE EMAIL PASSWORD -> prints the session token (empty on failure).
login() {
    curl -fsS -X POST "$1/v1/auth/login" -H 'Content-Type: application/json' \
        -d "{\"email\":\"$2\",\"password\":\"$3\"}" \
        | sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_atrium_sim STEP_MS: starts a standalone Atrium simulator (stopped on exit); sets SIM_URL
# and SIM_ENV (the settings that point donkies at it). sim_settings JSON changes its settings.
start_atrium_sim() {
    local sim_log="$WORK/sim.log" port i
    port="$(free_port)"
    log "starting the Atrium simulator on 127.0.0.1:$port"
    "$BIN" sandbox atrium --listen "127.0.0.1:$port" --step-ms "$1" >"$sim_log" 2>&1 &
    local pid=$!
    track_pid "$pid"
    SIM_URL=""
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { cat "$sim_log" >&2; die "simulator exited during start-up"; }
        SIM_URL="$(strip_ansi "$sim_log" | grep -o 'Atrium simulator listening on http://[0-9.:]*' | head -n1 | sed 's/.* on //')" || true
        [[ -n "$SIM_URL" ]] && break
        sleep 0.1
    done
    [[ -n "$SIM_URL" ]] || { cat "$sim_log" >&2; die "simulator did not print its URL within 10 s"; }
    log "simulator at $SIM_URL (pid $pid)"
    SIM_ENV=(
        DONKIES_ATRIUM_URL="$SIM_URL"
        DONKIES_ATRIUM_CLIENT_ID=donkies-sandbox-client
        DONKIES_ATRIUM_KEY=donkies-sandbox-key
        DONKIES_MEMBER_POLL_MS=100
    )
}

sim_settings() { # JSON
    curl -fsS -X POST "$SIM_URL/__sim/settings" -H 'Content-Type: application/json' -d "$1" \
        || die "POST /__sim/settings $1 failed"
    echo
}

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

# banking_user NAME BASE -> prints the token of bench1@example.com (signed up with $PASSWORD)
# once the institution catalog is there.
banking_user() {
    signup_one "$2" 1 "$PASSWORD" || die "$1: sign-up failed"
    local token
    token="$(login "$2" bench1@example.com "$PASSWORD")"
    [[ -n "$token" ]] || die "$1: login returned no token"
    wait_until 60 "$1: GET /v1/institutions non-empty" institutions_ready "$2" "$token"
    echo "$token"
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

# run_wrk OUTFILE wrk-args...
run_wrk() {
    local out=$1
    shift
    wrk "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed: $*"; }
}
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_p99() { awk '$1 == "99%" { print $2 }' "$1"; }
wrk_non2xx() { awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); n = $2 } END { print n + 0 }' "$1"; }
wrk_errors() { grep -E 'Socket errors' "$1" || true; }

# check_wrk NAME LABEL OUTFILE: non-2xx responses and socket errors become warnings.
check_wrk() {
    local n
    n="$(wrk_non2xx "$3")"
    [[ "$n" == 0 ]] || surprise "$1 $2: $n non-2xx responses"
    local e
    e="$(wrk_errors "$3")"
    [[ -z "$e" ]] || surprise "$1 $2: $e"
}

# median N... -> the median of the numbers.
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# worst_ms LATENCY... -> the largest of wrk latencies (850.00us, 16.38ms, 1.02s), in ms.
worst_ms() {
    printf '%s\n' "$@" | awk '
        /us$/ { v = substr($0, 1, length($0) - 2) / 1000 }
        /ms$/ { v = substr($0, 1, length($0) - 2) + 0 }
        /[0-9]s$/ { v = substr($0, 1, length($0) - 1) * 1000 }
        v > worst { worst = v }
        END { printf "%.2fms", worst }'
}

# ratio_pct A B -> "12.3%" (A/B) or n/a
ratio_pct() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }'
}

# check_log NAME LOGFILE: ERROR/panic lines become a warning.
check_log() {
    if grep -qiE '\b(ERROR|panicked)\b' "$2"; then
        local n
        n="$(grep -ciE '\b(ERROR|panicked)\b' "$2")"
        SURPRISES+=("$1: $n ERROR/panic lines in the server log, first: $(grep -iE '\b(ERROR|panicked)\b' "$2" | head -n1 | cut -c1-200)")
    fi
}

# pg_check -> sets PG_SKIPPED to a reason, or empty when PostgreSQL is usable.
pg_check() {
    PG_SKIPPED=""
    if ! command -v psql >/dev/null 2>&1; then
        PG_SKIPPED="psql is not installed"
    elif ! psql "$PG_ADMIN_URL" -qAt -c 'SELECT 1' >/dev/null 2>&1; then
        PG_SKIPPED="cannot connect to $PG_ADMIN_URL (set BENCH_POSTGRES_URL)"
    fi
}

# pg_fresh_db -> creates a fresh database (dropped on exit), sets PG_DB and PG_URL.
pg_fresh_db() {
    PG_DB="donkies_bench_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    PG_DBS+=("$PG_DB")
    psql "$PG_ADMIN_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
    # Same server and credentials as the admin URL, the fresh database as the path.
    PG_URL="$(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' \
        "$PG_ADMIN_URL" "$PG_DB")"
}

# print_surprises: the warnings block at the end of a report.
print_surprises() {
    if ((${#SURPRISES[@]})); then
        echo "warnings:"
        local s
        for s in "${SURPRISES[@]}"; do echo "  - $s"; done
    fi
}
