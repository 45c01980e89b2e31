"""Create llama.cpp contexts on the CPU for every model file over a sweep of settings and
record every buffer line llama.cpp logs, verbatim, with the parsed figures.

Usage: python sweep.py MODELDIR OUT.jsonl [name ...]
One JSON object per context (fields as in shared/calibration/llamacpp_cpu_runs.jsonl):
llama_cpp_version, model_name, arch, file, file_size_bytes, hparams (the GGUF metadata
written), tensors (every tensor: name, type, ne), tensor_type_mix, load, settings, ok, error,
observed (model_buffers_MiB, kv_buffers, kv_caches, rs_caches, compute_buffers_MiB,
output_buffer_MiB, graph_nodes, graph_splits, ctx_logged), verbatim (model_load, context).
"""

import itertools
import json
import os
import random
import re
import sys

import gguf
from llama_cpp import llama_cpp as C

import archs
import lib

TYPES = {"f16": C.GGML_TYPE_F16, "q8_0": C.GGML_TYPE_Q8_0, "q4_0": C.GGML_TYPE_Q4_0, "f32": C.GGML_TYPE_F32}
FA = {"on": C.LLAMA_FLASH_ATTN_TYPE_ENABLED, "off": C.LLAMA_FLASH_ATTN_TYPE_DISABLED, "auto": C.LLAMA_FLASH_ATTN_TYPE_AUTO}

BUF = re.compile(r"^(\w+):\s+(\S+)\s+(model|KV|RS|compute|output) buffer size =\s+([0-9.]+) MiB")
KV_SIZE = re.compile(r"^llama_kv_cache: size =\s+([0-9.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+)/(\d+) seqs\), K \((\w+)\):\s+([0-9.]+) MiB, V \((\w+)\):\s+([0-9.]+) MiB")
RS_SIZE = re.compile(r"^llama_memory_recurrent: size =\s+([0-9.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+) seqs(?:\s+(\d+) rs_seq)?\), R \((\w+)\):\s+([0-9.]+) MiB, S \((\w+)\):\s+([0-9.]+) MiB(?:, P \((\w+)\):\s+([0-9.]+) MiB)?")
GRAPH = re.compile(r"graph: nodes = (\d+), splits = (\d+)")
CTX_KV = re.compile(r"^llama_context: (\w+)\s+= (.+)$")


def settings_grid(spec, n_max):
    """A fixed, seeded sample of the full product of settings (the same every run)."""
    swa = any(k in spec["kv"] for k in ("attention.sliding_window",)) or spec["arch"] in ("gemma2", "gemma3n", "llama4")
    full = []
    for n_ctx, (n_seq, unified), (tk, tv), fa, ub, swa_full in itertools.product(
        [512, 4096, 32768], [(1, False), (4, False), (4, True)],
        [("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "f16")], ["on", "off"], [512, 2048],
        [True, False] if swa else [False],
    ):
        if tv != "f16" and fa == "off":
            continue  # llama.cpp refuses a quantized V cache without flash attention
        full.append(dict(n_ctx=n_ctx, n_seq=n_seq, kv_unified=unified, n_batch=2048, n_ubatch=ub,
                         type_k=tk, type_v=tv, flash_attn=fa, swa_full=swa_full, n_threads=2))
    rnd = random.Random(spec["name"])
    base = [s for s in full if s["n_ctx"] == 4096 and s["n_seq"] == 1 and s["type_k"] == "f16" and s["n_ubatch"] == 512]
    rest = [s for s in full if s not in base]
    rnd.shuffle(rest)
    return (base + rest)[:n_max]


def parse_context(lines):
    o = {"kv_buffers": [], "kv_caches": [], "rs_buffers": [], "rs_caches": [], "compute_buffers_MiB": {},
         "output_buffer_MiB": {}, "graph_nodes": None, "graph_splits": None, "ctx_logged": {}}
    for ln in lines:
        m = BUF.match(ln)
        if m:
            who, buft, kind, mib = m.group(1), m.group(2), m.group(3), float(m.group(4))
            if kind == "KV":
                o["kv_buffers"].append({"buft": buft, "MiB": mib, "by": who})
            elif kind == "RS":
                o["rs_buffers"].append({"buft": buft, "MiB": mib})
            elif kind == "compute":
                o["compute_buffers_MiB"][buft] = o["compute_buffers_MiB"].get(buft, 0) + mib
            elif kind == "output":
                o["output_buffer_MiB"][buft] = mib
        m = KV_SIZE.match(ln)
        if m:
            o["kv_caches"].append({"total_MiB": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3)),
                                   "n_seq_max": int(m.group(5)), "type_k": m.group(6), "K_MiB": float(m.group(7)),
                                   "type_v": m.group(8), "V_MiB": float(m.group(9))})
        m = RS_SIZE.match(ln)
        if m:
            o["rs_caches"].append({"total_MiB": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3)),
                                   "n_seq_max": int(m.group(4)), "n_rs_seq": int(m.group(5) or 0),
                                   "type_r": m.group(6), "R_MiB": float(m.group(7)),
                                   "type_s": m.group(8), "S_MiB": float(m.group(9)),
                                   "P_MiB": float(m.group(11)) if m.group(11) else None})
        m = GRAPH.search(ln)
        if m and ln.startswith("sched_reserve"):
            o["graph_nodes"], o["graph_splits"] = int(m.group(1)), int(m.group(2))
        m = CTX_KV.match(ln)
        if m:
            o["ctx_logged"][m.group(1)] = m.group(2).strip()
    o["kv_buffer_total_MiB"] = round(sum(b["MiB"] for b in o["kv_buffers"]), 2)
    return o


def file_facts(path):
    r = gguf.GGUFReader(path)
    tensors, mix = [], {}
    for t in r.tensors:
        ty = t.tensor_type.name
        tensors.append({"name": t.name, "type": ty, "ne": [int(x) for x in t.shape], "bytes": int(t.n_bytes)})
        m = mix.setdefault(ty, {"n_tensors": 0, "n_elements": 0, "n_bytes": 0})
        m["n_tensors"] += 1
        m["n_elements"] += int(t.n_elements)
        m["n_bytes"] += int(t.n_bytes)
    return tensors, mix


def run_model(spec, path, out, n_max):
    tensors, mix = file_facts(path)
    mp = C.llama_model_default_params()
    mp.n_gpu_layers = 0
    lib.take_log()
    model = C.llama_model_load_from_file(path.encode(), mp)
    load_log = lib.take_log()
    if not model:
        print(spec["name"], "LOAD FAILED", "\n".join(load_log[-8:]), flush=True)
        return 0
    model_bufs = {}
    for ln in load_log:
        m = BUF.match(ln)
        if m and m.group(3) == "model":
            model_bufs[m.group(2)] = float(m.group(4))
    keep = [ln for ln in load_log if ln.startswith(("print_info", "load_tensors", "llama_model_load"))]
    n = 0
    for i, s in enumerate(settings_grid(spec, n_max)):
        cp = C.llama_context_default_params()
        cp.n_ctx, cp.n_seq_max, cp.n_batch, cp.n_ubatch = s["n_ctx"], s["n_seq"], s["n_batch"], s["n_ubatch"]
        cp.type_k, cp.type_v = TYPES[s["type_k"]], TYPES[s["type_v"]]
        cp.flash_attn_type = FA[s["flash_attn"]]
        cp.swa_full, cp.kv_unified = s["swa_full"], s["kv_unified"]
        cp.n_threads = cp.n_threads_batch = s["n_threads"]
        ctx = C.llama_init_from_model(model, cp)
        log = lib.take_log()
        rec = {
            "llama_cpp_version": lib.VERSION, "model_name": spec["name"], "arch": spec["arch"],
            "file": f"(random-weight GGUF, scripts/llamacpp_truth/make_models.py) {spec['name']}.gguf",
            "file_size_bytes": os.path.getsize(path), "note": spec["note"],
            "hparams": {"arch": spec["arch"], "n_vocab": archs.VOCAB, "tied_embeddings": spec["tied"], **spec["kv"]},
            "tensors": tensors, "tensor_type_mix": mix,
            "load": {"use_extra_bufts": True, "load_mode": "auto", "n_gpu_layers": 0},
            "settings": s, "ok": bool(ctx), "error": None if ctx else (log[-1] if log else "?"),
            "observed": {"model_buffers_MiB": model_bufs,
                         "model_buffer_total_MiB": round(sum(model_bufs.values()), 2),
                         **parse_context(log)},
            "cfg_index": i, "grid": "sample",
            "verbatim": {"model_load": keep, "context": log},
        }
        out.write(json.dumps(rec) + "\n")
        out.flush()
        if ctx:
            C.llama_free(ctx)
        n += 1
    C.llama_model_free(model)
    return n


def main():
    modeldir, outpath = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or [s["name"] for s in archs.ARCHS]
    n_max = int(os.environ.get("SWEEP_PER_MODEL", "24"))
    lib.init()
    with open(outpath, "a") as out:
        for n in names:
            path = os.path.join(modeldir, f"{n}.gguf")
            if not os.path.exists(path):
                print(n, "no file", flush=True)
                continue
            print(n, run_model(archs.BY_NAME[n], path, out, n_max), "contexts", flush=True)


if __name__ == "__main__":
    main()
