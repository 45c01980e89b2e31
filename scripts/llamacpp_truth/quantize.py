"""Quantize f16 random-weight files with llama.cpp's own quantizer (llama_model_quantize) and
record, per output file, every tensor's chosen type and shape and the file's bytes.

Usage: python quantize.py MODELDIR OUT.jsonl name [name ...]
Q2_K_S needs an importance matrix (llama-quant.cpp `tensor_requires_imatrix`): it is run with
a uniform one (every weight 1.0), recorded as "imatrix": "uniform"; the other types run
without one, and Q4_0 / IQ4_XS run both ways (their rules differ with an imatrix).
"""

import ctypes
import json
import os
import sys

import gguf
from llama_cpp import llama_cpp as C

import lib

FTYPES = {  # include/llama.h enum llama_ftype
    "Q4_0": 2, "Q8_0": 7, "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14,
    "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "Q2_K_S": 21, "IQ4_XS": 30,
}
RUNS = [(f, False) for f in FTYPES if f != "Q2_K_S"] + [("Q2_K_S", True), ("Q4_0", True), ("IQ4_XS", True)]


ImatrixData = C.llama_model_imatrix_data


def uniform_imatrix(src):
    r = gguf.GGUFReader(src)
    keep, entries = [], []
    for t in r.tensors:
        ne = [int(x) for x in t.shape]
        if len(ne) < 2 or not t.name.endswith(".weight"):
            continue
        n = ne[0] * (ne[2] if len(ne) > 2 else 1)
        buf = (ctypes.c_float * n)(*([1.0] * n))
        name = t.name.encode()
        keep += [buf, name]
        entries.append(ImatrixData(name, ctypes.cast(buf, ctypes.POINTER(ctypes.c_float)), n))
    entries.append(ImatrixData(None, None, 0))
    arr = (ImatrixData * len(entries))(*entries)
    keep.append(arr)
    return arr, keep


def tensors_of(path):
    r = gguf.GGUFReader(path)
    return [{"name": t.name, "type": t.tensor_type.name, "ne": [int(x) for x in t.shape], "bytes": int(t.n_bytes)}
            for t in r.tensors], int(r.data_offset)


def main():
    modeldir, outpath, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    lib.init()
    with open(outpath, "a") as out:
        for name in names:
            src = os.path.join(modeldir, f"{name}.gguf")
            src_tensors, _ = tensors_of(src)
            imatrix, keep = uniform_imatrix(src)
            for ft, with_imatrix in RUNS:
                dst = os.path.join(modeldir, f"{name}.{ft}.gguf")
                p = C.llama_model_quantize_default_params()
                p.ftype = FTYPES[ft]
                p.nthread = 2
                if with_imatrix:
                    p.imatrix = ctypes.cast(imatrix, ctypes.POINTER(ImatrixData))
                lib.take_log()
                rc = C.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
                log = lib.take_log()
                rec = {"llama_cpp_version": lib.VERSION, "model_name": name, "ftype": ft, "ftype_id": FTYPES[ft],
                       "imatrix": "uniform" if with_imatrix else None, "ok": rc == 0,
                       "source_tensors": [{k: t[k] for k in ("name", "type", "ne")} for t in src_tensors]}
                if rc == 0:
                    tensors, data_offset = tensors_of(dst)
                    rec["tensors"] = [{"name": t["name"], "type": t["type"]} for t in tensors]
                    rec["file_size_bytes"] = os.path.getsize(dst)
                    rec["data_offset_bytes"] = data_offset
                    rec["tensor_bytes"] = sum(t["bytes"] for t in tensors)
                    os.remove(dst)
                else:
                    rec["error"] = [ln for ln in log if "error" in ln.lower() or "ERROR" in ln][-3:]
                rec["verbatim"] = [ln for ln in log if ln.startswith(("llama_model_quantize_impl: model size", "llama_model_quantize_impl: quant size", "llama_model_quantize_impl: file type"))]
                out.write(json.dumps(rec) + "\n")
                out.flush()
                print(name, ft, "imatrix" if with_imatrix else "", "ok" if rc == 0 else "FAILED", rec.get("file_size_bytes"), flush=True)


if __name__ == "__main__":
    main()
