#!/usr/bin/env bash
# Re-syncs the repository's copies of the project's reference material from the folder it was
# collected in (the one holding calibration/*.jsonl and reference/*.md):
#
#   scripts/sync_shared.sh DIR          copy new and changed files, report what changed
#   scripts/sync_shared.sh --check DIR  only report; exit 1 when anything differs
#
# calibration/*.jsonl → data/calibration/ (byte for byte);
# reference/*.md      → docs/reference/ (the notes' paths to the calibration files rewritten to
#                        data/calibration/, so a re-sync keeps them pointing inside the repository).
# Files present here but not in DIR are reported and kept. After a sync, run
# `cargo test -p vramplan --test calibration` (the calibration data is embedded in the binary).
set -euo pipefail
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
if [ $# -ne 1 ] || [ ! -d "$1/calibration" ] || [ ! -d "$1/reference" ]; then
    echo "usage: $0 [--check] DIR   (DIR holds calibration/*.jsonl and reference/*.md)" >&2
    exit 2
fi
src=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."

# The rewrite applied to the reference notes: their bare `calibration/X.jsonl` becomes the
# repository path. Idempotent (an already rewritten path is not matched again).
rewrite() {
    sed -E \
        -e 's#`calibration/([a-z_]+\.jsonl) \(a part of them\)`#`data/calibration/\1` (a part of them)#g' \
        -e 's#(^|[^/a-z_])calibration/([a-z_]+\.jsonl)#\1data/calibration/\2#g' \
        "$1"
}

differ=0
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sync_one() { # kind source destination
    local kind=$1 from=$2 to=$3
    if [ "$kind" = md ]; then rewrite "$from" >"$tmp"; else cp "$from" "$tmp"; fi
    if [ ! -f "$to" ]; then
        echo "new      $to ($(wc -l <"$tmp") lines)"
    elif cmp -s "$tmp" "$to"; then
        return
    else
        local old new
        old=$(wc -l <"$to"); new=$(wc -l <"$tmp")
        echo "changed  $to ($old → $new lines; $(diff "$to" "$tmp" | grep -c '^[<>]') lines differ)"
    fi
    differ=1
    if [ $check = 0 ]; then cp "$tmp" "$to"; chmod 644 "$to"; fi
}

mkdir -p data/calibration docs/reference
for f in "$src"/calibration/*.jsonl; do sync_one jsonl "$f" "data/calibration/$(basename "$f")"; done
for f in "$src"/reference/*.md; do sync_one md "$f" "docs/reference/$(basename "$f")"; done
for f in data/calibration/*.jsonl docs/reference/*.md; do
    case $f in docs/reference/README.md) continue ;; esac
    sub=calibration; [ "${f#docs/}" != "$f" ] && sub=reference
    [ -f "$src/$sub/$(basename "$f")" ] || echo "only here $f (kept)"
done
if [ $differ = 0 ]; then
    echo "in sync with $src"
elif [ $check = 1 ]; then
    exit 1
fi
