#!/usr/bin/env bash
# Instructions per API list request of the real server, stable under load
# (wall-clock figures on a shared 2-core machine vary 2x):
#
#   cargo build --release -p mediadl-cli
#   benches/api_callgrind.sh target/release/mediadl DATA_DIR [SECONDS]
#
# DATA_DIR is a data dir seeded by the api_load bench (MEDIADL_BENCH_DATA,
# admin password bench-password-1). `mediadl serve` runs under callgrind with
# instrumentation off until the server is warm; wrk then sends
# `GET /api/v1/downloads?platform=…&per_page=50&page=…` (wrk_list.lua) over
# 2 connections for SECONDS (default 30) with instrumentation on. Prints the
# requests, the instructions and their quotient; the profile is kept in
# callgrind.out.api.* for callgrind_annotate.
set -euo pipefail
BIN=${1:?mediadl binary}
DATA=${2:?seeded data dir}
SECONDS_LOAD=${3:-30}
PORT=${PORT:-18777}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SCRIPT=$HERE/adapters/server/benches/wrk_list.lua
OUT=callgrind.out.api
rm -f "$OUT" "$OUT".*
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" \
  "$BIN" serve --bind 127.0.0.1:"$PORT" --data-dir "$DATA" \
  --rate-limit-user 100000000 --rate-limit-public 100000000 >"$OUT.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break
  sleep 1
done
TOKEN=$(curl -sf -X POST -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-password-1"}' \
  "http://127.0.0.1:$PORT/api/v1/auth/login" | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
export MEDIADL_TOKEN=$TOKEN
wrk -t1 -c2 -d5s -s "$SCRIPT" "http://127.0.0.1:$PORT" >/dev/null # warm-up
callgrind_control -i on "$SERVER" >/dev/null 2>&1
wrk -t1 -c2 -d"${SECONDS_LOAD}s" -s "$SCRIPT" "http://127.0.0.1:$PORT" >"$OUT.wrk"
callgrind_control -i off "$SERVER" >/dev/null 2>&1
callgrind_control -d "$SERVER" >/dev/null 2>&1
kill -INT "$SERVER"
wait "$SERVER" || true
REQUESTS=$(awk '/requests in/ {print $1}' "$OUT.wrk")
PROFILE=$(ls -S "$OUT".* | grep -v '\.log$\|\.wrk$' | head -1)
TOTAL=$(callgrind_annotate "$PROFILE" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "requests $REQUESTS, instructions $TOTAL, per request $((TOTAL / REQUESTS)) ($PROFILE)"
