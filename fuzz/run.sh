#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each (default 30 s), starting
# from the checked-in seeds in fuzz/corpus/<target>/. New inputs found go
# to that directory too (ignored by git, except seed-* files); a crash
# stops the run and leaves the input in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh            # 30 s per target
#   fuzz/run.sh 600        # 10 minutes per target
#   fuzz/run.sh 60 rate    # one target
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build
for target in "${targets[@]}"; do
  echo "== fuzz $target for ${seconds}s"
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  status=0
  cargo +nightly fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed (exit $status); inputs in fuzz/artifacts/$target/" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
  if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
    echo "fuzz target $target found a failing input: fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "== fuzz: all targets ran ${seconds}s without a failure"
