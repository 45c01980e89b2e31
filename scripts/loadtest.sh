#!/usr/bin/env bash
# Bounded loopback load test of `vramplan serve` (issue 5): builds the release binary, starts the
# server on a free loopback port, drives POST /api/v1/estimate with Debian's wrk for
# LOADTEST_SECONDS (default 30) over a rotation of valid configurations, and prints requests per
# second, p99 latency and the error count (connect/read/write/timeout errors and non-2xx answers).
# Exits non-zero if any request failed. The server is always stopped.
#
#   scripts/loadtest.sh                  # 30 s, 1 wrk thread, 32 connections
#   LOADTEST_SECONDS=10 LOADTEST_CONNECTIONS=64 scripts/loadtest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_TO_RUN="${LOADTEST_SECONDS:-30}"
CONNECTIONS="${LOADTEST_CONNECTIONS:-32}"
THREADS="${LOADTEST_THREADS:-1}"

if ! command -v wrk >/dev/null 2>&1; then
    echo "==> installing wrk (Debian package)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi

echo "==> building vramplan (release)"
cargo build --quiet --release -p vramplan
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/vramplan"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac

WORK="$(mktemp -d)"
"$BIN" serve --host 127.0.0.1 --port 0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
cleanup() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

URL=""
for _ in $(seq 1 100); do
    URL="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$WORK/server.log" | head -n 1 || true)"
    [ -n "$URL" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.1
done
[ -n "$URL" ] || { echo "vramplan serve printed no address" >&2; exit 1; }

# wrk script: rotate over realistic requests (what the page sends on each change), and report
# the figures in one parseable line.
cat >"$WORK/estimate.lua" <<'LUA'
local bodies = {
  '{"model": "llama-3.1-8b", "gpu": "h100", "context": 8192, "batch": 1}',
  '{"model": "llama-3.1-70b-instruct", "gpu": "a100-80gb", "gpus": 4, "kv_dtype": "fp8", "context": 32768, "batch": 16}',
  '{"model": "mixtral-8x7b", "gpu": "l40s", "quant": "awq", "context": 4096, "batch": 8}',
  '{"model": "qwen2.5-7b-instruct", "gpu": "rtx-4090", "quant": "q4_k", "kv_dtype": "q8_0", "context": 16384}',
  '{"model": "llama-3.1-8b", "gpu_memory": "24GiB", "gpu_memory_utilization": 0.85, "context": 131072}',
}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/api/v1/estimate", {["Content-Type"] = "application/json"}, bodies[i])
end
local statuses = 0
response = function(status, headers, body)
  if status ~= 200 then statuses = statuses + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format("LOADTEST requests=%d seconds=%.2f rps=%.1f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, errors))
end
LUA

# One check before the run: every body in the rotation is a valid request.
curl_check() {
    command -v curl >/dev/null 2>&1 || return 0
    code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -d '{"model": "llama-3.1-8b"}' "$URL/api/v1/estimate")"
    [ "$code" = 200 ] || { echo "server answered $code to a valid request" >&2; exit 1; }
}
curl_check

echo "==> wrk: $SECONDS_TO_RUN s, $THREADS thread(s), $CONNECTIONS connections, POST $URL/api/v1/estimate"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_TO_RUN}s" --timeout 5s --latency -s "$WORK/estimate.lua" "$URL" | tee "$WORK/wrk.out"

LINE="$(grep '^LOADTEST' "$WORK/wrk.out")"
RPS="$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$LINE")"
P99="$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$LINE")"
ERRORS="$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$LINE")"
# The server must still answer after the run.
curl_check
echo
echo "requests/s: $RPS   p99 latency: $P99 ms   errors: $ERRORS"
[ "$ERRORS" = 0 ]
