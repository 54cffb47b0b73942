#!/usr/bin/env bash
# Compares custos binaries at the same moment: on a shared machine whose
# speed drifts, two builds measured minutes apart are not comparable, so
# this alternates them on one seeded database, ROUNDS times, and prints
# req/s, p99 and the server's CPU time per request (user + system, from
# /proc) for the API detail, API list page 1 and HTML results lines.
#
#   git worktree add /tmp/custos-old <commit> && (cd /tmp/custos-old && cargo build --release)
#   benches/compare.sh /tmp/custos-old/target/release/custos target/release/custos
#
# DATABASE_URL defaults to the database benches/run.sh seeded
# (bench-out/sqlite-1000000.db; run that first); set it to the PostgreSQL
# one (postgres://.../custos_bench_1000000) to compare on PostgreSQL.
# Knobs: BENCH_ROUNDS (2), BENCH_SECONDS (8), BENCH_CONNECTIONS (64),
# BENCH_PORT (18080).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ $# -ge 1 ] || { echo "usage: benches/compare.sh BINARY..." >&2; exit 2; }
ROUNDS=${BENCH_ROUNDS:-2}
SECS=${BENCH_SECONDS:-8}
C=${BENCH_CONNECTIONS:-64}
PORT=${BENCH_PORT:-18080}
export DATABASE_URL=${DATABASE_URL:-$ROOT/bench-out/sqlite-1000000.db}
# shellcheck source=benches/env.sh
. "$ROOT/benches/env.sh"
TOKENS=$BENCH_TOKEN_LIST

PID=
stop() { [ -n "$PID" ] && kill "$PID" 2> /dev/null && wait "$PID" 2> /dev/null || true; PID=; }
trap stop EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }

measure() { # label path [tokens cookie]
  local before after line
  before=$(cpu_ticks)
  line=$(BENCH_PATH=$2 BENCH_TOKENS=${3-$TOKENS} BENCH_COOKIE=${4:-} BENCH_MAX_ID=1000000 \
    wrk -t2 -c"$C" -d"${SECS}s" --timeout 5s --latency -s "$ROOT/benches/wrk.lua" \
    "http://127.0.0.1:$PORT" | grep '^BENCH ')
  after=$(cpu_ticks)
  read -r _ reqs dur _ p99 _ <<< "$line"
  python3 -c "
ticks = $after - $before
hz = $(getconf CLK_TCK)
print(f'  {\"$1\":<8} {$reqs / ($dur / 1e6):8.0f} req/s  p99 {$p99 / 1000:6.1f} ms  {ticks / hz * 1e6 / $reqs:6.1f} µs CPU/request')"
}

for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    "$bin" serve > /dev/null 2>&1 &
    PID=$!
    for _ in $(seq 1 300); do
      curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break
      sleep 0.1
    done
    # Warm-up (caches, reading threads).
    BENCH_PATH="/api/v1/customers/{id}/" BENCH_TOKENS=$TOKENS \
      wrk -t2 -c"$C" -d2s -s "$ROOT/benches/wrk.lua" "http://127.0.0.1:$PORT" > /dev/null
    echo "round $round: $bin"
    measure detail "/api/v1/customers/{id}/"
    measure list "/api/v1/customers/"
    cookie=$(python3 "$ROOT/benches/login.py" session "http://127.0.0.1:$PORT" bench0 "$BENCH_PASSWORD")
    measure html "/customers" "" "$cookie"
    stop
  done
done
