#!/usr/bin/env bash
# Times vramplan's inspect() and gguf-py's GGUFReader (the reference reader from llama.cpp) on the
# same GGUF with a realistic header: Llama-3-70B-shaped Q4_K_M, 723 tensor infos, a 128,256-token
# vocabulary + token types, 280,000 merges, ~40 GB of sparse data.
#
#   benches/inspect_vs_gguf_py.sh [PYTHON]       (PYTHON defaults to .venv-test/bin/python or python3)
#
# 1. cargo bench (criterion) writes the file and reports inspect()'s time;
# 2. the same file is opened with gguf.GGUFReader N times and the median wall time printed.
# Both read only the header; GGUFReader memory-maps the file and parses every field into numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY="${1:-}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/.venv-test/bin/python" ]; then PY="$ROOT/.venv-test/bin/python"; else PY=python3; fi
fi
"$PY" -c 'import gguf' 2>/dev/null || "$PY" -m pip install --quiet gguf numpy

export VRAMPLAN_BENCH_GGUF="${CARGO_TARGET_DIR:-$ROOT/target}/bench-fixtures/realistic-70b-q4_k_m.gguf"
mkdir -p "$(dirname "$VRAMPLAN_BENCH_GGUF")"

echo "==> vramplan inspect (criterion)"
cargo bench -p vramplan-formats --bench inspect -- --noplot 2>&1 |
    grep -E 'bench GGUF|bench safetensors|^inspect/|time:' || true

echo "==> gguf-py GGUFReader on $VRAMPLAN_BENCH_GGUF"
"$PY" - "$VRAMPLAN_BENCH_GGUF" <<'EOF'
import importlib.metadata, statistics, sys, time
import gguf
path = sys.argv[1]
times = []
for i in range(7):
    t0 = time.perf_counter()
    r = gguf.GGUFReader(path)
    n_tensors = len(r.tensors)
    vocab = len(r.fields["tokenizer.ggml.tokens"].data)
    times.append(time.perf_counter() - t0)
print(f"gguf {importlib.metadata.version('gguf')} GGUFReader: {n_tensors} tensors, {vocab} tokens; "
      f"median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms over {len(times)} runs")
EOF
