#!/usr/bin/env bash
# Runs every cargo-fuzz target (each file reader, and model_desc: file → reader → mapping →
# model description → every engine's estimate) for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 20)
#
# Works on the stable toolchain: cargo-fuzz needs unstable rustc flags (-Zsanitizer=address), which
# RUSTC_BOOTSTRAP=1 unlocks on stable. Installs cargo-fuzz (cargo install --locked) only if missing.
# Seeds each corpus from the reference-writer fixtures when VRAMPLAN_FIXTURES points at them.
# Exits non-zero on any crash, leak or timeout (the crashing input is kept in fuzz/artifacts/).
# Prints one line per target: executions, seconds, crashes.
set -euo pipefail
SECONDS_PER_TARGET="${1:-20}"
case "$SECONDS_PER_TARGET" in
    ''|*[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=(gguf_header safetensors_header hf_config model_desc)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# Keep sanitizer builds apart from normal ones (different RUSTFLAGS would rebuild everything).
FUZZ_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz"

seed_dir() {
    # Small fixture files of the kind each target reads, copied into a scratch seed folder.
    local target=$1 out=$2
    mkdir -p "$out"
    local fx="${VRAMPLAN_FIXTURES:-}"
    [ -n "$fx" ] && [ -d "$fx" ] || return 0
    local pattern
    case "$target" in
        gguf_header) pattern='*.gguf' ;;
        safetensors_header) pattern='*.safetensors' ;;
        hf_config) pattern='*.json' ;;
        model_desc) pattern='*' ;;
    esac
    find "$fx" -name "$pattern" -size -1024k \( -type f -o -type l \) 2>/dev/null | head -50 |
        while read -r f; do cp -L "$f" "$out/$(basename "$f")-$(cksum <"$f" | cut -d' ' -f1)"; done
    if [ "$target" = gguf_header ]; then
        find "$fx/ollama" -path '*/blobs/*' -size -1024k -type f 2>/dev/null | head -5 |
            while read -r f; do cp "$f" "$out/"; done
    fi
    return 0
}

status=0
summary=()
for t in "${TARGETS[@]}"; do
    corpus="$ROOT/fuzz/corpus/$t"
    seeds="$ROOT/fuzz/corpus/.seeds-$t"
    rm -rf "$seeds"
    mkdir -p "$corpus"
    seed_dir "$t" "$seeds"
    log="$(mktemp)"
    echo "==> fuzzing $t for ${SECONDS_PER_TARGET}s"
    set +e
    (cd "$ROOT/fuzz" && cargo fuzz run --target-dir "$FUZZ_TARGET_DIR" "$t" "$corpus" "$seeds" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=262144 \
        -timeout=10 -print_final_stats=1) >"$log" 2>&1
    rc=$?
    set -e
    # `|| true`: a crashed run prints no "Done" line, and under pipefail grep's miss would end
    # the script before the crash is reported below.
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{print $5}' | tail -1 || true)
    if [ $rc -ne 0 ]; then
        tail -40 "$log" >&2
        summary+=("$t: FAILED (exit $rc) after ${execs:-?} executions; see fuzz/artifacts/$t/")
        status=1
    else
        summary+=("$t: ${execs:-?} executions in ${secs:-$SECONDS_PER_TARGET} s, 0 crashes")
    fi
    rm -f "$log"
    rm -rf "$seeds"
done
printf '%s\n' "${summary[@]}"
exit $status
