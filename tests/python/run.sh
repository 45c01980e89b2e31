#!/usr/bin/env bash
# The wheel test: builds the wheel with maturin from this workspace (the dev profile, so it reuses
# the debug build the other tests made: seconds, not a release build), installs it into a fresh
# venv under target/, and checks the `vramplan` module against the binary's own --json
# (tests/python/test_module.py). Needs maturin in $VENV (scripts/requirements-test.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VENV="${VENV:-$ROOT/.venv-test}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
rm -rf "$TARGET/wheels" "$TARGET/wheel-venv"
"$VENV/bin/maturin" build --quiet --profile dev --out "$TARGET/wheels"
WHEEL=$(ls "$TARGET"/wheels/vramplan-*.whl)
python3 -m venv "$TARGET/wheel-venv"
"$TARGET/wheel-venv/bin/pip" install --quiet --disable-pip-version-check "$WHEEL"
# Run from elsewhere, so `import vramplan` finds the installed package, not python/ here.
cd "$TARGET"
env -u VRAMPLAN_BIN "$TARGET/wheel-venv/bin/python" "$ROOT/tests/python/test_module.py"
