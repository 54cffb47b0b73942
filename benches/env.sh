# The server environment of the query benchmarks (sourced by run.sh and
# compare.sh, with PORT set): rate limits stay on but high, so that the
# token check, the quota and the audit row are measured on every request.
export CUSTOS_SECRET_KEY=bench-secret-bench-secret-bench-secret-bench-secret-0123456789
export CUSTOS_API_USER_RATE=100000000/day
export CUSTOS_API_ANON_RATE=1000/minute
export CUSTOS_BURST_PER_SECOND=1000000 CUSTOS_BURST_SIZE=1000000
export CUSTOS_LOGIN_MAX_FAILURES=1000 CUSTOS_LOGIN_MAX_ADDRESS_FAILURES=100000
export CUSTOS_LOG=warn
export CUSTOS_BIND=127.0.0.1:$PORT
# One token per bench user, as run.sh imports them: b000…0, b000…1, …
BENCH_TOKEN_LIST=$(for i in $(seq 0 31); do printf '%040d ' "$i" | sed "s/^0/b/"; done)
export BENCH_TOKEN_LIST
# The bench users' password (run.sh creates them, compare.sh signs in).
BENCH_PASSWORD=bench-password-violet-kettle-93
