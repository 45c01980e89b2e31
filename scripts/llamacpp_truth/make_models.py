"""Random-weight GGUF files for every architecture in archs.py.

For each architecture: (1) gguf-py writes the metadata (no tensors); (2) the pinned llama.cpp
creates, from that metadata alone, every tensor its loader asks for (llama_model_init_from_user)
and saves that model (llama_model_save_to_file); (3) gguf-py writes the final file: our
metadata, and the loader's tensors minus the optional ones a converted file of the family does
not carry (archs.py DROP), with random values, typed as convert_hf_to_gguf.py types an f16
conversion (conversion/base.py `prepare_tensors`: 1-D tensors, norms, routers, conv kernels and
tensors not ending in .weight as F32, the rest F16; gpt-oss experts MXFP4 as released).

Usage: python make_models.py OUTDIR [name ...]
"""

import os
import zlib
import re
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

import archs
import lib

# conversion/base.py prepare_tensors: tensors kept in F32 whatever the output type.
F32_NAMES = re.compile(
    r"(ffn_gate_inp|ffn_gate_inp_shexp|position_embd|token_types|ssm_conv1d|shortconv\.conv"
    r"|altup_correct_coef|altup_predict_coef)\.weight$|_norm\.weight$"
)


def write_metadata(w, spec):
    arch = spec["arch"]
    for k, v in spec["kv"].items():
        key = f"{arch}.{k}"
        if isinstance(v, bool):
            w.add_bool(key, v)
        elif isinstance(v, int):
            w.add_uint32(key, v)
        elif isinstance(v, float):
            w.add_float32(key, v)
        elif isinstance(v, list):
            w.add_array(key, [int(x) for x in v])
        else:
            raise TypeError(key)
    w.add_vocab_size(archs.VOCAB)
    w.add_tokenizer_model("test")
    w.add_token_list([f"tok_{i}" for i in range(archs.VOCAB)])
    w.add_token_scores([0.0] * archs.VOCAB)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)


def metadata_file(spec, path):
    w = gguf.GGUFWriter(path, spec["arch"])
    write_metadata(w, spec)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()


def target_type(spec, name, ne):
    if len(ne) == 1 or F32_NAMES.search(name) or not name.endswith(".weight"):
        return Q.F32
    if spec.get("expert_type") == "MXFP4" and re.search(r"ffn_(gate|up|down)_exps\.weight$", name):
        return Q.MXFP4
    return Q.F16


def make(spec, outdir, rng):
    name = spec["name"]
    meta = os.path.join(outdir, f"{name}.meta.gguf")
    virt = os.path.join(outdir, f"{name}.virtual.gguf")
    final = os.path.join(outdir, f"{name}.gguf")
    metadata_file(spec, meta)
    log = lib.virtual_model_tensors(meta, virt)
    r = gguf.GGUFReader(virt)
    drops = [re.compile(p) for p in spec["drop"]]
    w = gguf.GGUFWriter(final, spec["arch"])
    write_metadata(w, spec)
    kept, dropped = [], []
    tensors = []
    for t in r.tensors:
        ne = [int(x) for x in t.shape]
        if t.name.endswith("ffn_gate_up_exps.weight"):
            # The loader takes a fused gate+up expert tensor first when it exists; converters
            # write gate and up apart unless asked to fuse (conversion/base.py
            # fuse_gate_up_exps = False), and the loader then takes the pair.
            half = [ne[0], ne[1] // 2] + ne[2:]
            stem = t.name[: -len("ffn_gate_up_exps.weight")]
            tensors += [(stem + "ffn_gate_exps.weight", half), (stem + "ffn_up_exps.weight", half)]
        else:
            tensors.append((t.name, ne))
    for name_, ne in tensors:
        if any(d.search(name_) for d in drops):
            dropped.append(name_)
            continue
        qt = target_type(spec, name_, ne)
        shape = tuple(reversed(ne))
        data = rng.standard_normal(shape, dtype=np.float32) * 0.02
        if "ssm_a" in name_:
            data = -np.abs(data) - 0.5
        if qt == Q.F32:
            w.add_tensor(name_, data.astype(np.float32))
        elif qt == Q.F16:
            w.add_tensor(name_, data.astype(np.float16))
        else:
            q = gguf.quants.quantize(data, qt)
            w.add_tensor(name_, q, raw_shape=q.shape, raw_dtype=qt)
        kept.append(name_)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.remove(virt)
    os.remove(meta)
    return {"name": name, "kept": len(kept), "dropped": dropped, "log_tail": log[-3:]}


def main():
    outdir = sys.argv[1]
    names = sys.argv[2:] or [s["name"] for s in archs.ARCHS]
    os.makedirs(outdir, exist_ok=True)
    lib.init()
    for n in names:
        rng = np.random.default_rng(zlib.crc32(n.encode()))
        try:
            info = make(archs.BY_NAME[n], outdir, rng)
            print(n, "ok", info["kept"], "tensors; dropped", len(info["dropped"]), info["dropped"][:6], flush=True)
        except Exception as e:  # report and continue with the next architecture
            print(n, "FAILED", str(e)[-2000:], flush=True)


if __name__ == "__main__":
    main()
