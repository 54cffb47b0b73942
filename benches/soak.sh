#!/usr/bin/env bash
# Soak: serves a SQLite database on loopback and, for SECONDS (default 300),
# mixes page views, API calls from many tokens (some over their quota),
# logins with right and wrong passwords, and CSV exports. Counts every
# answer's status and fails on any 5xx or any status other than
# 200/303/401/403/404/429. Reports the server's RSS at start and end.
#
#   benches/soak.sh            # 5 minutes, release build
#   benches/soak.sh 60         # 1 minute
#   CUSTOS_BIN=target/debug/custos benches/soak.sh 60   # a given binary
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-300}
USERS=${SOAK_USERS:-8}
WORKERS=${SOAK_WORKERS:-6}
if [ -z "${CUSTOS_BIN:-}" ]; then
  cargo build --release --quiet
  CUSTOS_BIN=$PWD/target/release/custos
fi
WORK=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL=$WORK/soak.db
export CUSTOS_SECRET_KEY=soak-secret-soak-secret-soak-secret-soak-secret-0123456789
# A low quota so some tokens run out and answer 429 during the soak.
export CUSTOS_API_USER_RATE=${SOAK_USER_RATE:-300/hour}
export CUSTOS_LOG=warn
# Wrong passwords go to an unknown account; keep the loopback address from
# being locked for everyone.
export CUSTOS_LOGIN_MAX_ADDRESS_FAILURES=100000
PASSWORD=violet-kettle-93-drum
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export CUSTOS_BIND=127.0.0.1:$PORT
BASE=http://127.0.0.1:$PORT

"$CUSTOS_BIN" seed --customers 5000 --operators 10 >/dev/null
for i in $(seq 1 "$USERS"); do
  printf '%s\n' "$PASSWORD" | "$CUSTOS_BIN" user create --username "user$i" --password-stdin >/dev/null
done
"$CUSTOS_BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$BASE/healthz" >/dev/null

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }

# login JAR USER PASSWORD -> prints the status of the POST
login() {
  local jar=$1 user=$2 password=$3 csrf
  rm -f "$jar" # a fresh browser: a signed-in one is not shown the form
  local form status
  form=$(curl -sS -c "$jar" -b "$jar" -w '\n%{http_code}' "$BASE/login")
  status=${form##*$'\n'}
  csrf=$(printf '%s' "$form" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n1)
  # No form (the burst limiter said 429): a browser would not post either.
  if [ -z "$csrf" ]; then echo "$status"; return; fi
  curl -sS -o /dev/null -w '%{http_code}\n' -c "$jar" -b "$jar" \
    --data-urlencode "csrf_token=$csrf" --data-urlencode "username=$user" \
    --data-urlencode "password=$password" --data-urlencode "next=" "$BASE/login"
}

# One token per user, created through the account page.
for i in $(seq 1 "$USERS"); do
  jar=$WORK/jar$i
  [ "$(login "$jar" "user$i" "$PASSWORD")" = 303 ] || { echo "login of user$i failed" >&2; exit 1; }
  csrf=$(curl -sS -b "$jar" "$BASE/account" | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n1)
  curl -sS -b "$jar" --data-urlencode "csrf_token=$csrf" "$BASE/account/tokens" |
    tr -d '\n' | sed -n 's/.*id="api-token">\s*\([0-9a-f]\{40\}\).*/\1/p' >"$WORK/token$i"
  [ -s "$WORK/token$i" ] || { echo "no token for user$i" >&2; exit 1; }
done

RSS_START=$(rss_kb)
END=$(( $(date +%s) + DURATION ))

# worker N: loops over a mix of requests, one status per line.
worker() {
  local n=$1 i=0 user jar token
  user=$(( n % USERS + 1 ))
  jar=$WORK/jar$user
  token=$(cat "$WORK/token$user")
  while [ "$(date +%s)" -lt "$END" ]; do
    i=$((i + 1))
    case $(( i % 10 )) in
      0|1|2) curl -sS -o /dev/null -w '%{http_code}\n' -H "Authorization: Token $(cat "$WORK/token$(( (i + n) % USERS + 1 ))")" \
               "$BASE/api/v1/customers/?page=$(( i % 5 + 1 ))&ordering=-created_at&search=a" ;;
      3) curl -sS -o /dev/null -w '%{http_code}\n' -H "Authorization: Token $token" "$BASE/api/v1/operators/$(( i % 12 + 1 ))/" ;;
      4) curl -sS -o /dev/null -w '%{http_code}\n' -H "Authorization: Token 0000000000000000000000000000000000000000" "$BASE/api/v1/customers/" ;;
      5) curl -sS -o /dev/null -w '%{http_code}\n' -b "$jar" "$BASE/customers?status=active&page=$(( i % 7 + 1 ))" ;;
      6) curl -sS -o /dev/null -w '%{http_code}\n' -b "$jar" "$BASE/customers/$(( i % 6000 + 1 ))" ;;
      7) login "$WORK/w$n.jar" "user$user" "$PASSWORD" ;;
      8) login "$WORK/w$n.bad" "ghost$n" "not-the-password-$i" ;;
      9) if [ $(( i % 30 )) -eq 9 ]; then
           curl -sS -o /dev/null -w '%{http_code}\n' -b "$jar" "$BASE/customers/export.csv?status=closed"
         else
           curl -sS -o /dev/null -w '%{http_code}\n' "$BASE/customers"
         fi ;;
    esac
  done >"$WORK/statuses$n" 2>>"$WORK/curl-errors"
}

pids=()
for n in $(seq 1 "$WORKERS"); do
  worker "$n" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

RSS_END=$(rss_kb)
kill -0 "$SERVER" || { echo "the server died" >&2; exit 1; }
echo "soak: ${DURATION}s, $WORKERS workers, $USERS users/tokens"
cat "$WORK"/statuses* | sort | uniq -c | awk '{printf "  %s %s\n", $2, $1}'
TOTAL=$(cat "$WORK"/statuses* | wc -l)
BAD=$(cat "$WORK"/statuses* | grep -cvE '^(200|303|401|403|404|429)$' || true)
echo "requests: $TOTAL, unexpected statuses: $BAD"
echo "server RSS: start ${RSS_START} kB, end ${RSS_END} kB"
if [ -s "$WORK/curl-errors" ]; then
  echo "curl errors:" >&2; sort "$WORK/curl-errors" | uniq -c | head >&2
  exit 1
fi
if [ "$BAD" -ne 0 ]; then
  grep -E 'status=5|ERROR' "$WORK/server.log" | head -n 20 >&2 || true
  exit 1
fi
