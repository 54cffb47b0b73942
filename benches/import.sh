#!/usr/bin/env bash
# Measures `custos import` and `custos seed` of N customers on SQLite and,
# when BENCH_POSTGRES_URL is set, on PostgreSQL. Prints one line per run.
#
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test benches/import.sh 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
cargo build --release --quiet
BIN=$PWD/target/release/custos
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 benches/gen_csv.py "$WORK" "$N" 20
export CUSTOS_SECRET_KEY=bench-secret-bench-secret-bench-secret-bench-secret-0123456789
printf '%-10s %-26s %10s %12s\n' backend work seconds rows/s

run() { # backend label command...
  local backend=$1 label=$2; shift 2
  local start end
  start=$(date +%s.%N)
  "$@" > /dev/null
  end=$(date +%s.%N)
  python3 -c "import sys; s=$end-$start; print(f'{sys.argv[1]:<10} {sys.argv[2]:<26} {s:10.1f} {int($N/s):12d}')" "$backend" "$label"
}

bench_backend() { # backend url
  local backend=$1
  export DATABASE_URL=$2
  "$BIN" migrate > /dev/null
  "$BIN" import operators "$WORK/operators.csv" > /dev/null
  run "$backend" "import customers ($N)" "$BIN" import customers "$WORK/customers.csv"
}

bench_backend sqlite "$WORK/import.db"
DATABASE_URL="$WORK/seed.db" run sqlite "seed --customers $N" "$BIN" seed --customers "$N" --operators 20

if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  base=${BENCH_POSTGRES_URL%/*}
  for db in custos_bench_import custos_bench_seed; do
    psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" > /dev/null
  done
  bench_backend postgres "$base/custos_bench_import"
  DATABASE_URL="$base/custos_bench_seed" "$BIN" migrate > /dev/null
  DATABASE_URL="$base/custos_bench_seed" run postgres "seed --customers $N" "$BIN" seed --customers "$N" --operators 20
fi
