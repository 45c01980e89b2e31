#!/usr/bin/env bash
# The one test command (README quick start, .ci/run): installs what the tests need on a fresh
# machine, idempotently, then runs every test: unit, property, golden, CLI end-to-end, file
# readers against fixtures made by the reference writers, the README's examples, the Python wheel,
# bounded fuzzing, API and browser tests. It leaves the working tree as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="$ROOT/.venv-test"
export VRAMPLAN_FIXTURES="$ROOT/target/fixtures"

step() { printf '\n==> %s\n' "$*"; }

step "Python packages for fixtures and browser tests (venv at .venv-test)"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$ROOT/scripts/requirements-test.txt"

step "Chromium and ChromeDriver for the browser tests (Debian packages)"
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ -f scripts/gen_fixtures.py ]; then
    step "Fixtures from the reference writers (gguf, safetensors)"
    rm -rf "$VRAMPLAN_FIXTURES"
    "$VENV/bin/python" scripts/gen_fixtures.py "$VRAMPLAN_FIXTURES"
fi

step "Model catalogue layout (stored config.json files + meta.toml)"
python3 scripts/check_catalogue.py --quiet

step "cargo test (workspace)"
cargo test --workspace --all-targets

if [ -x scripts/fuzz.sh ]; then
    step "Bounded fuzzing of every file reader"
    scripts/fuzz.sh "${VRAMPLAN_FUZZ_SECONDS:-15}"
fi

step "Python wheel: built with maturin, installed in a fresh venv, checked against the binary"
VENV="$VENV" tests/python/run.sh

if [ -x tests/browser/run.sh ]; then
    step "API and browser end-to-end tests (headless Chromium)"
    VENV="$VENV" tests/browser/run.sh
fi

step "all tests passed"
