#!/usr/bin/env bash
# Query and API benchmark of issue 7 ("Fast at a million customers").
#
# Seeds N customers / 20 operators with `custos seed`, starts custos (release
# build, rate limits on but high, load spread over several users' tokens) and
# a minimal actix-web reference server (benches/reference), runs bounded wrk
# runs for each line of the issue's table and prints one table: work,
# requests/s, ratio to the reference, p50, p99, RSS. Then CSV export rows/s
# and RSS growth, growth at 10k/100k, and (with BENCH_POSTGRES_URL) the same
# table on PostgreSQL.
#
#   benches/run.sh
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test benches/run.sh
#
# Every figure is the median of BENCH_RUNS (3) measured runs of the line
# (each metric's own median), after a short warm-up.
#
# Knobs: BENCH_CUSTOMERS (1000000), BENCH_SECONDS (10), BENCH_CONNECTIONS
# (64), BENCH_USERS (32), BENCH_RUNS (3), BENCH_GROWTH (1; 0 skips
# 10k/100k), BENCH_REUSE (1 keeps seeded databases in bench-out/ between
# runs), BENCH_PORT (18080), BENCH_POSTGRES_POOL (4).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${BENCH_CUSTOMERS:-1000000}
D=${BENCH_SECONDS:-10}
C=${BENCH_CONNECTIONS:-64}
USERS=${BENCH_USERS:-32}
RUNS=${BENCH_RUNS:-3}
PORT=${BENCH_PORT:-18080}
REF_PORT=$((PORT + 1))
OUT=$ROOT/bench-out
mkdir -p "$OUT"
START_TIME=$(date +%s)

for tool in wrk curl python3; do
  command -v "$tool" > /dev/null || { echo "benches/run.sh needs $tool" >&2; exit 1; }
done

echo "building (release)..." >&2
cargo build --release --quiet
cargo build --release --quiet --manifest-path benches/reference/Cargo.toml \
  --target-dir "$ROOT/target/bench-reference"
BIN=$ROOT/target/release/custos
REF=$ROOT/target/bench-reference/release/custos-bench-reference

# shellcheck source=benches/env.sh
. "$ROOT/benches/env.sh"
PASSWORD=$BENCH_PASSWORD

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
}
trap cleanup EXIT

rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2> /dev/null || echo "?"; }

wait_up() { # url
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "server at $1 did not come up" >&2
  exit 1
}

# Seeds a database (DATABASE_URL) with n customers, bench users and tokens,
# unless BENCH_REUSE=1 and it was prepared before (marker file).
prepare() { # n marker
  local n=$1 marker=$2
  if [ "${BENCH_REUSE:-0}" = 1 ] && [ -f "$marker" ]; then return; fi
  # Seeding needs an empty database (PostgreSQL ones are dropped below).
  case $DATABASE_URL in
    postgres://* | postgresql://*) ;;
    *) rm -f "$DATABASE_URL" "$DATABASE_URL-wal" "$DATABASE_URL-shm" ;;
  esac
  "$BIN" migrate > /dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" seed --customers "$n" --operators 20 --seed 7 > /dev/null 2>&1
  t1=$(date +%s.%N)
  echo "seeded $n customers in $(python3 -c "print(round($t1-$t0,1))") s" >&2
  local csv=$OUT/tokens.csv
  echo "key,username" > "$csv"
  for i in $(seq 0 $((USERS - 1))); do
    printf '%s\n' "$PASSWORD" | "$BIN" user create --username "bench$i" --password-stdin > /dev/null
    printf '%040d,bench%d\n' "$i" "$i" | sed "s/^0/b/" >> "$csv"
  done
  printf '%s\n' "$PASSWORD" | "$BIN" user create --username bench-login --password-stdin > /dev/null
  "$BIN" import tokens "$csv" --expires-in-days 30 > /dev/null
  touch "$marker"
}
TOKENS=$(for i in $(seq 0 $((USERS - 1))); do printf '%040d ' "$i" | sed "s/^0/b/"; done)

start_custos() { # log
  "$BIN" serve > "$1" 2>&1 &
  CUSTOS_PID=$!
  PIDS+=("$CUSTOS_PID")
  wait_up "http://127.0.0.1:$PORT/healthz"
}

stop_custos() {
  kill "$CUSTOS_PID" 2> /dev/null || true
  wait "$CUSTOS_PID" 2> /dev/null || true
}

# One wrk run; sets REQS RPS P50 P99 ERRS.
wrk_run() { # seconds port path auth(token|cookie|none) [max_id]
  local secs=$1 port=$2 path=$3 auth=$4 max_id=${5:-$N} tokens="" cookie=""
  [ "$auth" = token ] && tokens=$TOKENS
  [ "$auth" = cookie ] && cookie=$COOKIE
  local line
  line=$(BENCH_PATH=$path BENCH_TOKENS=$tokens BENCH_COOKIE=$cookie BENCH_MAX_ID=$max_id \
    wrk -t2 -c"$C" -d"${secs}s" --timeout 5s --latency -s "$ROOT/benches/wrk.lua" \
    "http://127.0.0.1:$port" | grep '^BENCH ')
  read -r _ REQS DUR P50 P99 NON2XX SOCK <<< "$line"
  RPS=$(python3 -c "print(round($REQS / ($DUR / 1e6)))")
  P50=$(python3 -c "print(f'{$P50/1000:.2f}')")
  P99=$(python3 -c "print(f'{$P99/1000:.2f}')")
  ERRS=$((NON2XX + SOCK))
}

median() { # values...
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# RUNS measured wrk runs; sets RPS P50 P99 ERRS to the medians.
wrk_median() { # seconds port path auth [max_id]
  local rps=() p50=() p99=() errs=()
  for _ in $(seq 1 "$RUNS"); do
    wrk_run "$@"
    rps+=("$RPS") p50+=("$P50") p99+=("$P99") errs+=("$ERRS")
  done
  RPS=$(median "${rps[@]}") P50=$(median "${p50[@]}") P99=$(median "${p99[@]}") ERRS=$(median "${errs[@]}")
}

ROWS=()
row() { # work rps p50 p99 errs rss
  local ratio
  ratio=$(python3 -c "print(f'{$2 / $REF_RPS * 100:.0f} %')")
  ROWS+=("$(printf '| %-44s | %9s | %6s | %8s | %8s | %6s | %6s |' "$1" "$2" "$ratio" "$3" "$4" "$5" "$6")")
}
print_table() { # title
  echo
  echo "### $1"
  echo
  printf '| %-44s | %9s | %6s | %8s | %8s | %6s | %6s |\n' work "req/s" "× ref" "p50 ms" "p99 ms" errors "RSS MB"
  printf '| %-44s | %9s | %6s | %8s | %8s | %6s | %6s |\n' --- ---: ---: ---: ---: ---: ---:
  printf '%s\n' "${ROWS[@]}"
  ROWS=()
}

# Measures one line: a short warm-up, then the measured runs.
line() { # label path auth [max_id]
  wrk_run 2 "$PORT" "$2" "$3" "${4:-$N}"
  wrk_median "$D" "$PORT" "$2" "$3" "${4:-$N}"
  row "$1" "$RPS" "$P50" "$P99" "$ERRS" "$(rss_mb "$CUSTOS_PID")"
}

# The issue's table against the running custos (n customers).
query_table() { # n
  local n=$1 deep=$(( $1 >= 1000000 ? 10000 : $1 / 100 ))
  COOKIE=$(python3 "$ROOT/benches/login.py" session "http://127.0.0.1:$PORT" bench0 "$PASSWORD")
  line "API detail /api/v1/customers/{id}/" "/api/v1/customers/{id}/" token "$n"
  line "API list page 1 (exact count)" "/api/v1/customers/" token
  # Pages kept per data version make the line above a cache hit after its
  # first request; random pages 1..2000 mostly miss (512 pages are kept).
  local pages=$(( n / 50 < 2000 ? n / 50 : 2000 ))
  line "API list random page 1-$pages (mostly uncached)" "/api/v1/customers/?page={id}" token "$pages"
  line "API search smith, active, -created_at" "/api/v1/customers/?search=smith&status=active&ordering=-created_at" token
  line "API deep page=$deep" "/api/v1/customers/?page=$deep" token
  line "HTML /customers (logged in)" "/customers" cookie
  # API detail while 32 login attempts run at once (each run its own).
  local rps=() p50=() p99=() errs=() logins=()
  for _ in $(seq 1 "$RUNS"); do
    python3 "$ROOT/benches/login.py" load "http://127.0.0.1:$PORT" bench-login $((D + 3)) 32 > "$OUT/logins.txt" &
    local login_pid=$!
    sleep 1
    wrk_run "$D" "$PORT" "/api/v1/customers/{id}/" token "$n"
    wait "$login_pid"
    rps+=("$RPS") p50+=("$P50") p99+=("$P99") errs+=("$ERRS") logins+=("$(cat "$OUT/logins.txt")")
  done
  row "API detail during 32 concurrent logins" "$(median "${rps[@]}")" "$(median "${p50[@]}")" \
    "$(median "${p99[@]}")" "$(median "${errs[@]}")" "$(rss_mb "$CUSTOS_PID")"
  LOGINS="$(median "${logins[@]}") (median of ${logins[*]}) in $((D + 3)) s"
}

export_line() {
  local before peak t0 t1 rows rates=() growths=() peaks=()
  for _ in $(seq 1 "$RUNS"); do
    before=$(rss_mb "$CUSTOS_PID")
    echo "$before" > "$OUT/rss.txt"
    ( while kill -0 "$CUSTOS_PID" 2> /dev/null; do rss_mb "$CUSTOS_PID" >> "$OUT/rss.txt"; echo >> "$OUT/rss.txt"; sleep 0.1; done ) &
    local sampler=$!
    t0=$(date +%s.%N)
    rows=$(curl -sf -H "Cookie: $COOKIE" "http://127.0.0.1:$PORT/customers/export.csv" | wc -l)
    t1=$(date +%s.%N)
    kill "$sampler" 2> /dev/null || true
    wait "$sampler" 2> /dev/null || true
    peak=$(sort -n "$OUT/rss.txt" | tail -1)
    rows=$((rows - 1))
    rates+=("$(python3 -c "print(round($rows/($t1-$t0)))")")
    growths+=("$((peak - before))")
    peaks+=("$peak")
  done
  EXPORT="CSV export of all $rows rows: $(median "${rates[@]}") rows/s (median of ${rates[*]}), RSS growth during an export $(median "${growths[@]}") MB (median of ${growths[*]}; peaks ${peaks[*]} MB)"
}

# --- SQLite, N customers ------------------------------------------------
"$REF" "127.0.0.1:$REF_PORT" > /dev/null 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")
wait_up "http://127.0.0.1:$REF_PORT/"

export DATABASE_URL=$OUT/sqlite-$N.db
prepare "$N" "$OUT/sqlite-$N.ready"
start_custos "$OUT/custos-sqlite.log"
wrk_run 2 "$REF_PORT" / none
wrk_median "$D" "$REF_PORT" / none
REF_RPS=$RPS
row "reference (actix-web, small JSON)" "$RPS" "$P50" "$P99" "$ERRS" "$(rss_mb "$REF_PID")"
query_table "$N"
export_line
SQLITE_EXPORT=$EXPORT
SQLITE_LOGINS=$LOGINS
FINAL_RSS=$(rss_mb "$CUSTOS_PID")
print_table "SQLite, $N customers, $C connections, median of $RUNS runs of ${D} s per line"
echo
echo "- $SQLITE_EXPORT"
echo "- login attempts answered during the 32-login line: $SQLITE_LOGINS"
echo "- custos RSS at the end of the SQLite run: $FINAL_RSS MB"
stop_custos

# --- growth: 10k and 100k -----------------------------------------------
if [ "${BENCH_GROWTH:-1}" = 1 ]; then
  SAVED_D=$D
  D=5
  for n in 10000 100000; do
    export DATABASE_URL=$OUT/sqlite-$n.db
    prepare "$n" "$OUT/sqlite-$n.ready"
    start_custos "$OUT/custos-sqlite-$n.log"
    COOKIE=$(python3 "$ROOT/benches/login.py" session "http://127.0.0.1:$PORT" bench0 "$PASSWORD")
    line "API detail" "/api/v1/customers/{id}/" token "$n"
    line "API list page 1" "/api/v1/customers/" token
    line "API search" "/api/v1/customers/?search=smith&status=active&ordering=-created_at" token
    line "API deep page=$((n / 100)) (half way)" "/api/v1/customers/?page=$((n / 100))" token
    print_table "growth: SQLite, $n customers, median of $RUNS runs of ${D} s per line"
    stop_custos
  done
  D=$SAVED_D
fi

# --- PostgreSQL ---------------------------------------------------------
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  db=custos_bench_$N
  export DATABASE_URL=${BENCH_POSTGRES_URL%/*}/$db
  # A database on this machine is reached without TLS: on loopback it
  # protects nothing (docs/deployment.md: TLS when the database is on
  # another host) and cost about a quarter of the HTML line's CPU.
  case $DATABASE_URL in
    *@127.0.0.1[:/]* | *@localhost[:/]*) DATABASE_URL="$DATABASE_URL?sslmode=disable" ;;
  esac
  if [ "${BENCH_REUSE:-0}" != 1 ] || [ ! -f "$OUT/$db.ready" ]; then
    rm -f "$OUT/$db.ready"
    psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" > /dev/null
  fi
  prepare "$N" "$OUT/$db.ready"
  # Statistics, hint bits and visibility map for the fresh rows, then
  # write them out now: otherwise the first minutes of measuring compete
  # with PostgreSQL's checkpoint of the whole load (a third of the figures).
  psql "$DATABASE_URL" -qc "VACUUM ANALYZE" -c "CHECKPOINT" > /dev/null
  # PostgreSQL shares these two cores: four connections (reading threads)
  # instead of the default ten did about a fifth more, with fewer context
  # switches between custos threads and server processes (BENCHMARKS.md).
  # With the database on its own machine the default suits better.
  CUSTOS_DB_POOL_SIZE=${BENCH_POSTGRES_POOL:-4} start_custos "$OUT/custos-postgres.log"
  row "reference (from the SQLite run)" "$REF_RPS" "-" "-" "-" "-"
  query_table "$N"
  export_line
  print_table "PostgreSQL, $N customers, $C connections, median of $RUNS runs of ${D} s per line"
  echo
  echo "- $EXPORT"
  echo "- login attempts answered during the 32-login line: $LOGINS"
  echo "- custos RSS at the end of the PostgreSQL run: $(rss_mb "$CUSTOS_PID") MB"
  stop_custos
fi
echo
echo "whole run: $(( $(date +%s) - START_TIME )) s"
