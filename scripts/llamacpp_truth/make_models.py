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


def gemma3n_tensors(spec):
    """Gemma 3n's tensors, listed by hand: llama_model_save_to_file does not support the
    architecture (llama_model_saver_supports_arch). src/models/gemma3n.cpp load_arch_tensors;
    n_altup = 4, laurel_rank = 64 and n_embd_altup = 256 are fixed (llama-hparams.h), whatever
    the file says."""
    kv = spec["kv"]
    e, n, ff = kv["embedding_length"], kv["block_count"], kv["feed_forward_length"]
    hd, h, hkv = kv["attention.key_length"], kv["attention.head_count"], kv["attention.head_count_kv"]
    v, altup, laurel, e_alt = archs.VOCAB, 4, 64, 256
    out = [("token_embd.weight", [e, v]), ("altup_proj.weight", [e, e, altup - 1]),
           ("altup_unembd_proj.weight", [e, e, altup - 1]),
           ("per_layer_token_embd.weight", [e_alt * n, v]),
           ("per_layer_model_proj.weight", [e, e_alt * n]), ("per_layer_proj_norm.weight", [e_alt]),
           ("output_norm.weight", [e])]
    for i in range(n):
        b = f"blk.{i}."
        out += [(b + "attn_norm.weight", [e]), (b + "attn_q.weight", [e, hd * h]),
                (b + "attn_k.weight", [e, hd * hkv]), (b + "attn_v.weight", [e, hd * hkv]),
                (b + "attn_output.weight", [hd * h, e]), (b + "attn_q_norm.weight", [hd]),
                (b + "attn_k_norm.weight", [hd]), (b + "post_attention_norm.weight", [e]),
                (b + "ffn_norm.weight", [e]), (b + "ffn_gate.weight", [e, ff]), (b + "ffn_up.weight", [e, ff]),
                (b + "ffn_down.weight", [ff, e]), (b + "post_ffw_norm.weight", [e]),
                (b + "inp_gate.weight", [e, e_alt]), (b + "proj.weight", [e_alt, e]),
                (b + "post_norm.weight", [e]), (b + "altup_correct_coef.weight", [altup, altup]),
                (b + "altup_correct_scale.weight", [e]), (b + "altup_predict_coef.weight", [altup, altup * altup]),
                (b + "altup_router.weight", [e, altup]), (b + "altup_router_norm.weight", [e]),
                (b + "laurel_l.weight", [e, laurel]), (b + "laurel_r.weight", [laurel, e]),
                (b + "laurel_post_norm.weight", [e])]
    return out


def loader_tensors(spec, outdir):
    """(name, ne) of every tensor llama.cpp's loader creates for the spec's metadata."""
    if spec["arch"] == "gemma3n":
        return gemma3n_tensors(spec), []
    name = spec["name"]
    meta = os.path.join(outdir, f"{name}.meta.gguf")
    virt = os.path.join(outdir, f"{name}.virtual.gguf")
    metadata_file(spec, meta)
    log = lib.virtual_model_tensors(meta, virt)
    r = gguf.GGUFReader(virt)
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
        elif spec.get("fuse_qkv") and t.name.endswith(("attn_k.weight", "attn_v.weight")):
            continue  # folded into attn_qkv with attn_q below
        elif spec.get("fuse_qkv") and t.name.endswith("attn_q.weight"):
            stem = t.name[: -len("attn_q.weight")]
            k = next(x for x in r.tensors if x.name == stem + "attn_k.weight")
            v = next(x for x in r.tensors if x.name == stem + "attn_v.weight")
            tensors.append((stem + "attn_qkv.weight", [ne[0], ne[1] + int(k.shape[1]) + int(v.shape[1])]))
        else:
            tensors.append((t.name, ne))
    os.remove(virt)
    os.remove(meta)
    return tensors, log


def make(spec, outdir, rng):
    name = spec["name"]
    final = os.path.join(outdir, f"{name}.gguf")
    tensors, log = loader_tensors(spec, outdir)
    drops = [re.compile(p) for p in spec["drop"]]
    w = gguf.GGUFWriter(final, spec["arch"])
    write_metadata(w, spec)
    kept, dropped = [], []
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
