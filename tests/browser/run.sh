#!/usr/bin/env bash
# Browser end-to-end tests of the calculator page (issue 5): installs what is missing (Debian's
# chromium and chromedriver; selenium and pytest in a venv), builds vramplan, starts
# `vramplan serve` on a free loopback port, runs tests/browser with pytest (they save
# screenshots to target/screenshots, or to $VRAMPLAN_SCREENSHOTS), and always stops the server.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VENV="${VENV:-$ROOT/.venv-test}"

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "==> installing chromium and chromium-driver (Debian packages)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c 'import selenium, pytest' >/dev/null 2>&1; then
    echo "==> installing selenium and pytest into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check selenium pytest
fi

echo "==> building vramplan"
cargo build --quiet -p vramplan
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/vramplan"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac

LOG="$(mktemp)"
"$BIN" serve --host 127.0.0.1 --port 0 >"$LOG" 2>&1 &
SERVER_PID=$!
stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    rm -f "$LOG"
}
trap stop_server EXIT INT TERM

# Port 0: the kernel picks a free port; the server prints the address it got.
URL=""
for _ in $(seq 1 100); do
    URL="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$LOG" | head -n 1 || true)"
    [ -n "$URL" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG"; echo "vramplan serve exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$URL" ] || { cat "$LOG"; echo "vramplan serve printed no address" >&2; exit 1; }
echo "==> server at $URL"

VRAMPLAN_URL="$URL" VRAMPLAN_BIN="$BIN" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/browser "$@"
