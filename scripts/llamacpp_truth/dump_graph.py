"""Dump the reserve graphs the pinned llama.cpp builds for one model and one context, tensor by
tensor (graph_dump.c, preloaded), to compare reserve_graph.rs with llama.cpp node for node.

Usage (from this folder, with the .venv-truth of the README):
  gcc -shared -fPIC -O1 -I$LLAMA/ggml/include -o graph_dump.so graph_dump.c -ldl
  LD_PRELOAD=./graph_dump.so GRAPH_DUMP=out.txt python dump_graph.py MODEL.gguf \
      n_ctx=4096 n_seq=1 kv_unified=0 n_ubatch=512 type_k=f16 type_v=f16 flash_attn=on swa_full=0
($LLAMA: the vendored llama.cpp of the sdist.) Prints the buffer and graph lines llama.cpp
logs; out.txt gets one "GRAPH n_nodes n_leafs" block per reserve (pp, tg, pp again).
`cargo run -p vramplan-core --example reserve_graph_diff -- out.txt ...` compares the first
block with the simulated graph.
"""

import sys

from llama_cpp import llama_cpp as C

import lib
import sweep


def main():
    path = sys.argv[1]
    s = dict(n_ctx=4096, n_seq=1, kv_unified=False, n_batch=2048, n_ubatch=512, type_k="f16",
             type_v="f16", flash_attn="on", swa_full=False, n_threads=2)
    for arg in sys.argv[2:]:
        k, v = arg.split("=", 1)
        if isinstance(s[k], bool):
            s[k] = v in ("1", "true", "True")
        elif isinstance(s[k], int):
            s[k] = int(v)
        else:
            s[k] = v
    lib.init()
    mp = C.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = C.llama_model_load_from_file(path.encode(), mp)
    lib.take_log()
    cp = C.llama_context_default_params()
    cp.n_ctx, cp.n_seq_max, cp.n_batch, cp.n_ubatch = s["n_ctx"], s["n_seq"], s["n_batch"], s["n_ubatch"]
    cp.type_k, cp.type_v = sweep.TYPES[s["type_k"]], sweep.TYPES[s["type_v"]]
    cp.flash_attn_type = sweep.FA[s["flash_attn"]]
    cp.swa_full, cp.kv_unified = s["swa_full"], s["kv_unified"]
    cp.n_threads = cp.n_threads_batch = s["n_threads"]
    ctx = C.llama_init_from_model(model, cp)
    for ln in lib.take_log():
        if "buffer size" in ln or "graph" in ln or "size =" in ln:
            print(ln)
    if ctx:
        C.llama_free(ctx)
    C.llama_model_free(model)


if __name__ == "__main__":
    main()
