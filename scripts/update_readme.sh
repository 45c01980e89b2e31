#!/usr/bin/env bash
# Regenerates what the README shows: every command of its ```console blocks is run again and its
# output written back (crates/cli/tests/readme.rs with VRAMPLAN_BLESS=1), files those commands
# write (docs/simulate-figure2.svg) are replaced, and, with --screenshots, the page's screenshots
# (docs/screenshot.png, docs/screenshot-phone.png) are taken again by the browser tests.
# The test command (scripts/test.sh) never changes docs/ or README.md; this script is the one
# that does. Read `git diff` afterwards: a changed figure is a change of behaviour to explain.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Hub examples run against the loopback Hub over the test fixtures (scripts/test.sh makes them).
export VRAMPLAN_FIXTURES="${VRAMPLAN_FIXTURES:-$PWD/target/fixtures}"
VRAMPLAN_BLESS=1 cargo test -q -p vramplan --test readme
if [ "${1:-}" = "--screenshots" ]; then
    VRAMPLAN_SCREENSHOTS="$PWD/docs" tests/browser/run.sh -k "screenshot or phone"
fi
git status --short README.md docs/
