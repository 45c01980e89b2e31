#!/usr/bin/env python3
"""Make test fixtures for vramplan-formats with the *reference writers*: the `gguf` package's
GGUFWriter (llama.cpp's gguf-py) and the `safetensors` package, plus numpy.

Usage: python3 scripts/gen_fixtures.py OUTDIR

Writes, under OUTDIR:
  gguf/basic.gguf            v3, 17 tensors in 15 ggml types (F32, F16, BF16, I8..I64, F64,
                             Q4_0, Q8_0, Q4_K, Q5_K, Q6_K, IQ4_NL, MXFP4), every metadata value
                             type, string/int/float/nested arrays, a 300-token vocabulary
  gguf/big_endian.gguf       the same writer in big-endian mode
  gguf/align64.gguf          general.alignment = 64
  gguf/split/tiny-0000N-of-00002.gguf   one model split in two files (split_max_tensors)
  safetensors/single/        model.safetensors (11 dtypes, a scalar, an empty tensor) + config.json
  safetensors/sharded/       2 shards + model.safetensors.index.json + config.json
  hf_cache/hub/models--test-org--tiny-llama/   refs/main, snapshots/REV -> blobs (symlinks)
  ollama/models/             manifests/registry.ollama.ai/library/tiny/latest + blobs/sha256-*
  configs/*.json             config.json variants (VLM text_config, MoE + MLA, AWQ, Mixtral)
  hub/repos.json, hub/registry.json   repositories and ollama models for the loopback Hub
                             (crates/testhub): the files above arranged as Hub repos (sharded,
                             single, GGUF with tags and a split set, gated, private, config-only,
                             pickle-only, a hostile header), and two real-shaped models kept as
                             their first bytes and a length: a Llama-3.1-70B-shaped bf16
                             checkpoint in 30 shards (headers to the safetensors layout, checked
                             by the package's reader on sparse files) and a 70B Q4_K_M GGUF
                             (header, metadata and tensor infos by gguf-py's GGUFWriter, checked
                             by its GGUFReader), whose tokenizer makes a ~9 MB header
  expected.json              what each writer was given: per tensor name, type, shape, element
                             count and bytes; totals; metadata keys with types and values; the
                             config fields the reader must find.

Quantized GGUF tensors are written as raw bytes (`add_tensor(raw_dtype=...)`) of shape
(rows, bytes_per_row); the writer turns that into the logical shape with its own block table
(gguf.quants.quant_shape_from_byte_shape), so sizes come from gguf-py, not from our code.
"""

import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
import safetensors
from safetensors.numpy import save_file

RNG = np.random.default_rng(1234)


def rel(out: Path, p: Path) -> str:
    return str(p.relative_to(out))


# ----------------------------------------------------------------------------------------------
# GGUF
# ----------------------------------------------------------------------------------------------

class GgufRecorder:
    """Wraps a GGUFWriter and records what it was given."""

    def __init__(self, path: Path, arch: str, **kwargs):
        self.w = gguf.GGUFWriter(str(path), arch, **kwargs)
        self.tensors = []
        self.metadata = {"general.architecture": {"type": "STRING", "value": arch}}

    def kv(self, key, vtype: V, value, sub_type=None):
        self.w.add_key_value(key, value, vtype, sub_type=sub_type)
        entry = {"type": vtype.name, "value": value}
        if vtype == V.ARRAY:
            entry["elem_type"] = (sub_type or V.get_type(value[0])).name
        self.metadata[key] = entry

    def float_tensor(self, name, array: np.ndarray, type_name: str, raw_dtype=None):
        self.w.add_tensor(name, array, raw_dtype=raw_dtype)
        shape = list(array.shape)
        self._record(name, type_name, shape, int(array.nbytes))

    def quant_tensor(self, name, qtype: Q, rows: int, cols: int):
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        assert cols % block == 0
        raw = RNG.integers(0, 256, size=(rows, cols // block * type_size), dtype=np.uint8)
        self.w.add_tensor(name, raw, raw_dtype=qtype)
        logical = list(gguf.quants.quant_shape_from_byte_shape(raw.shape, qtype))
        self._record(name, qtype.name, logical, int(raw.nbytes))

    def _record(self, name, type_name, numpy_shape, nbytes):
        n = 1
        for d in numpy_shape:
            n *= d
        self.tensors.append({
            "name": name,
            "type": type_name,
            # ggml order: innermost first, the reverse of numpy's (gguf_writer reverses too).
            "ne": list(reversed(numpy_shape)),
            "n_elements": n,
            "n_bytes": nbytes,
        })

    def write(self):
        self.w.write_header_to_file()
        self.w.write_kv_data_to_file()
        self.w.write_tensors_to_file()
        self.w.close()

    def expected(self, out: Path, path: Path, **extra):
        return {
            "path": rel(out, path),
            "tensors": self.tensors,
            "total_params": sum(t["n_elements"] for t in self.tensors),
            "total_bytes": sum(t["n_bytes"] for t in self.tensors),
            "metadata": self.metadata,
            **extra,
        }


def vocabulary(n: int):
    specials = ["<unk>", "<s>", "</s>", "▁hé", "日本", "\u00e9t\u00e9", "a\tb", "emoji 🙂"]
    return specials + [f"tok{i}" for i in range(n - len(specials))]


def write_basic_gguf(out: Path, path: Path, endianess=gguf.GGUFEndian.LITTLE, alignment=None):
    r = GgufRecorder(path, "llama", endianess=endianess)
    if alignment is not None:
        r.w.add_custom_alignment(alignment)
        r.metadata["general.alignment"] = {"type": "UINT32", "value": alignment}
    hidden, ffn, vocab_n, layers = 256, 512, 300, 2
    r.kv("general.name", V.STRING, "tiny fixture")
    r.kv("general.file_type", V.UINT32, 15)  # MOSTLY_Q4_K_M
    r.kv("general.quantization_version", V.UINT32, 2)
    r.kv("llama.block_count", V.UINT32, layers)
    r.kv("llama.context_length", V.UINT32, 4096)
    r.kv("llama.embedding_length", V.UINT32, hidden)
    r.kv("llama.feed_forward_length", V.UINT32, ffn)
    r.kv("llama.attention.head_count", V.UINT32, 8)
    r.kv("llama.attention.head_count_kv", V.ARRAY, [2, 4], sub_type=V.UINT32)  # per layer
    r.kv("llama.rope.dimension_count", V.UINT32, 32)
    r.kv("llama.attention.layer_norm_rms_epsilon", V.FLOAT32, 1e-5)
    # One key per scalar type.
    r.kv("test.u8", V.UINT8, 200)
    r.kv("test.i8", V.INT8, -100)
    r.kv("test.u16", V.UINT16, 60000)
    r.kv("test.i16", V.INT16, -30000)
    r.kv("test.u32", V.UINT32, 4000000000)
    r.kv("test.i32", V.INT32, -2000000000)
    r.kv("test.f32", V.FLOAT32, -1.25)
    r.kv("test.bool", V.BOOL, True)
    r.kv("test.u64", V.UINT64, 2**63 + 5)
    r.kv("test.i64", V.INT64, -(2**62))
    r.kv("test.f64", V.FLOAT64, 3.141592653589793)
    r.kv("test.string", V.STRING, "héllo\nworld")
    r.kv("test.nested", V.ARRAY, [[1, 2], [3, 4, 5]])
    r.kv("test.bools", V.ARRAY, [True, False, True])
    tokens = vocabulary(vocab_n)
    r.kv("tokenizer.ggml.model", V.STRING, "llama")
    r.kv("tokenizer.ggml.tokens", V.ARRAY, tokens)
    r.kv("tokenizer.ggml.scores", V.ARRAY, [float(-i) for i in range(vocab_n)])
    r.kv("tokenizer.ggml.token_type", V.ARRAY, [1] * vocab_n)

    r.quant_tensor("token_embd.weight", Q.Q4_K, vocab_n, hidden)
    r.float_tensor("blk.0.attn_norm.weight", np.ones(hidden, dtype=np.float32), "F32")
    r.quant_tensor("blk.0.attn_q.weight", Q.Q4_0, hidden, hidden)
    r.quant_tensor("blk.0.attn_k.weight", Q.Q8_0, 64, hidden)
    r.quant_tensor("blk.0.ffn_up.weight", Q.Q5_K, ffn, hidden)
    r.quant_tensor("blk.0.ffn_down.weight", Q.Q6_K, hidden, ffn)
    r.float_tensor("blk.1.attn_q.weight", RNG.standard_normal((hidden, hidden)).astype(np.float16), "F16")
    bf16_bits = RNG.integers(0, 2**16, size=(128, hidden), dtype=np.uint16)
    r.float_tensor("blk.1.attn_k.weight", bf16_bits, "BF16", raw_dtype=Q.BF16)
    r.quant_tensor("blk.1.ffn_gate.weight", Q.IQ4_NL, ffn, hidden)
    r.quant_tensor("blk.1.ffn_down.weight", Q.MXFP4, hidden, ffn)
    r.quant_tensor("output.weight", Q.Q6_K, vocab_n, hidden)
    r.float_tensor("test.i8", np.arange(32, dtype=np.int8).reshape(4, 8), "I8")
    r.float_tensor("test.i16", np.arange(6, dtype=np.int16), "I16")
    r.float_tensor("test.i32", np.arange(3, dtype=np.int32), "I32")
    r.float_tensor("test.i64", np.arange(5, dtype=np.int64), "I64")
    r.float_tensor("test.f64", np.zeros((2, 2), dtype=np.float64), "F64")
    r.float_tensor("test.conv4d", np.zeros((2, 3, 4, 5), dtype=np.float32), "F32")
    r.write()
    return r.expected(
        out, path,
        version=3,
        big_endian=endianess == gguf.GGUFEndian.BIG,
        alignment=alignment or 32,
        architecture="llama",
        file_type_name="Q4_K_M",
        vocab_size=vocab_n,
        config={
            "num_hidden_layers": layers, "hidden_size": hidden, "num_attention_heads": 8,
            "num_key_value_heads": [2, 4], "intermediate_size": ffn, "vocab_size": vocab_n,
            "max_position_embeddings": 4096, "tie_word_embeddings": False,
        },
    )


def write_split_gguf(out: Path, directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / "tiny.gguf"
    r = GgufRecorder(base, "llama", split_max_tensors=3)
    r.kv("general.name", V.STRING, "tiny split")
    r.kv("general.file_type", V.UINT32, 7)  # MOSTLY_Q8_0
    r.kv("llama.block_count", V.UINT32, 1)
    r.kv("llama.context_length", V.UINT32, 2048)
    r.kv("llama.embedding_length", V.UINT32, 64)
    r.kv("llama.feed_forward_length", V.UINT32, 128)
    r.kv("llama.attention.head_count", V.UINT32, 4)
    r.kv("llama.attention.head_count_kv", V.UINT32, 4)
    r.kv("tokenizer.ggml.tokens", V.ARRAY, vocabulary(32))
    r.quant_tensor("token_embd.weight", Q.Q8_0, 32, 64)
    r.float_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32), "F32")
    r.quant_tensor("blk.0.attn_q.weight", Q.Q8_0, 64, 64)
    r.quant_tensor("blk.0.ffn_up.weight", Q.Q8_0, 128, 64)
    r.quant_tensor("blk.0.ffn_down.weight", Q.Q8_0, 64, 128)
    r.write()
    parts = sorted(directory.glob("tiny-*-of-*.gguf"))
    assert len(parts) == 2, parts
    e = r.expected(out, parts[0], parts=len(parts), part_paths=[rel(out, p) for p in parts],
                   file_type_name="Q8_0", architecture="llama")
    return e


# ----------------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------------

def save_safetensors(path: Path, tensors: dict, metadata: dict) -> dict:
    """tensors: name -> (dtype_name, np.ndarray of the right byte layout). BF16 and F8_E4M3 go
    through ml_dtypes when installed, else through the package's TensorSpec API (safetensors
    >= 0.7), which records a 0-d tensor as shape [1]: scalars are left out on that path.
    Returns the tensors actually written."""
    plain, special = {}, {}
    for name, (dtype, arr) in tensors.items():
        (special if dtype in ("BF16", "F8_E4M3") else plain)[name] = (dtype, arr)
    try:
        import ml_dtypes  # noqa: F401
        have_ml = True
    except ImportError:
        have_ml = False
    if not special or have_ml:
        arrays = {}
        for name, (dtype, arr) in tensors.items():
            if dtype == "BF16":
                arr = arr.view(ml_dtypes.bfloat16)
            elif dtype == "F8_E4M3":
                arr = arr.view(ml_dtypes.float8_e4m3fn)
            arrays[name] = arr
        save_file(arrays, str(path), metadata=metadata)
        return tensors
    names = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn"}
    tensors = {k: v for k, v in tensors.items() if v[1].ndim > 0}
    keep = []
    specs = {}
    for name, (dtype, arr) in tensors.items():
        arr = np.ascontiguousarray(arr)
        keep.append(arr)
        specs[name] = safetensors.TensorSpec(
            dtype=names.get(dtype, arr.dtype.name), shape=list(arr.shape),
            data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    safetensors.serialize_file(specs, str(path), metadata=metadata)
    return tensors


def st_record(tensors: dict, shard=None):
    out = []
    for name, (dtype, arr) in sorted(tensors.items()):
        n = int(np.prod(arr.shape, dtype=np.int64)) if arr.ndim else 1
        rec = {"name": name, "dtype": dtype, "shape": list(arr.shape), "n_elements": n,
               "n_bytes": int(arr.nbytes)}
        if shard is not None:
            rec["shard"] = shard
        out.append(rec)
    return out


LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "vocab_size": 32, "max_position_embeddings": 2048, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
}


def write_single_safetensors(out: Path, d: Path):
    d.mkdir(parents=True, exist_ok=True)
    t = {
        "model.embed_tokens.weight": ("BF16", RNG.integers(0, 2**16, size=(32, 64), dtype=np.uint16)),
        "model.layers.0.self_attn.q_proj.weight": ("F16", RNG.standard_normal((64, 64)).astype(np.float16)),
        "model.layers.0.input_layernorm.weight": ("F32", np.ones(64, dtype=np.float32)),
        "model.layers.0.mlp.down_proj.weight": ("F8_E4M3", RNG.integers(0, 256, size=(64, 128), dtype=np.uint8)),
        "model.layers.0.mlp.down_proj.weight_scale": ("F32", np.ones((1,), dtype=np.float32)),
        "q.int8": ("I8", np.zeros((3, 5), dtype=np.int8)),
        "q.uint8": ("U8", np.zeros((7,), dtype=np.uint8)),
        "q.int32": ("I32", np.zeros((2, 2, 2), dtype=np.int32)),
        "q.int64": ("I64", np.zeros((3,), dtype=np.int64)),
        "q.f64": ("F64", np.zeros((2,), dtype=np.float64)),
        "q.bool": ("BOOL", np.zeros((9,), dtype=bool)),
        "q.scalar": ("F32", np.array(1.5, dtype=np.float32)),
        "q.empty": ("F32", np.zeros((0, 4), dtype=np.float32)),
    }
    meta = {"format": "pt", "note": "fixture"}
    t = save_safetensors(d / "model.safetensors", t, meta)
    (d / "config.json").write_text(json.dumps(LLAMA_CONFIG, indent=2))
    recs = st_record(t)
    return {"path": rel(out, d / "model.safetensors"), "dir": rel(out, d), "tensors": recs,
            "metadata": meta, "total_params": sum(r["n_elements"] for r in recs),
            "total_bytes": sum(r["n_bytes"] for r in recs)}


# Quantization kept beside config.json (layout::QUANT_CONFIGS): what checkpoints made by NVIDIA
# ModelOpt <= 0.29, AutoGPTQ and AutoAWQ ship, with config.json carrying no quantization_config.
# The files' shapes are those tools' writers': ModelOpt's export_hf_checkpoint
# (hf_quant_config.json: producer + quantization.quant_algo; 0-d F32 weight_scale/input_scale
# beside each F8_E4M3 weight), AutoGPTQ's save_quantized (quantize_config.json without
# quant_method; qweight I32 [in/8, out], qzeros I32 [in/group, out/8], scales F16
# [in/group, out], g_idx I32 [in]), AutoAWQ's save_quantized (quant_config.json: w_bit,
# q_group_size, zero_point, version).
LLAMA_LINEARS = [("self_attn.q_proj", 64, 64), ("self_attn.k_proj", 32, 64),
                 ("self_attn.v_proj", 32, 64), ("self_attn.o_proj", 64, 64),
                 ("mlp.gate_proj", 128, 64), ("mlp.up_proj", 128, 64), ("mlp.down_proj", 64, 128)]


def llama_unquantized_rest():
    t = {"model.embed_tokens.weight": ("BF16", RNG.integers(0, 2**16, size=(32, 64), dtype=np.uint16)),
         "lm_head.weight": ("BF16", RNG.integers(0, 2**16, size=(32, 64), dtype=np.uint16)),
         "model.norm.weight": ("BF16", RNG.integers(0, 2**16, size=(64,), dtype=np.uint16))}
    for i in range(2):
        for n in ("input_layernorm", "post_attention_layernorm"):
            t[f"model.layers.{i}.{n}.weight"] = ("BF16", RNG.integers(0, 2**16, size=(64,), dtype=np.uint16))
    return t


def write_quantized(out: Path):
    base = out / "quantized"
    dirs = {}

    def folder(name, side_name, side, tensors=None):
        d = base / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(LLAMA_CONFIG, indent=2))
        (d / side_name).write_text(json.dumps(side, indent=2))
        rec = {"dir": rel(out, d), "side": side_name}
        if tensors is not None:
            written = save_safetensors(d / "model.safetensors", tensors, {"format": "pt"})
            rec["total_bytes"] = sum(int(a.nbytes) for _, a in written.values())
        dirs[name] = rec

    fp8 = llama_unquantized_rest()
    for i in range(2):
        for lin, o, n in LLAMA_LINEARS:
            p = f"model.layers.{i}.{lin}"
            fp8[f"{p}.weight"] = ("F8_E4M3", RNG.integers(0, 256, size=(o, n), dtype=np.uint8))
            fp8[f"{p}.weight_scale"] = ("F32", np.array(0.01, dtype=np.float32))
            fp8[f"{p}.input_scale"] = ("F32", np.array(0.02, dtype=np.float32))
    folder("modelopt-fp8", "hf_quant_config.json", {
        "producer": {"name": "modelopt", "version": "0.27.1"},
        "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": None,
                         "exclude_modules": ["lm_head"]}}, fp8)
    gptq = llama_unquantized_rest()
    for i in range(2):
        for lin, o, n in LLAMA_LINEARS:
            p = f"model.layers.{i}.{lin}"
            groups = -(-n // 128)
            gptq[f"{p}.qweight"] = ("I32", RNG.integers(0, 2**31, size=(n // 8, o), dtype=np.int32))
            gptq[f"{p}.qzeros"] = ("I32", RNG.integers(0, 2**31, size=(groups, o // 8), dtype=np.int32))
            gptq[f"{p}.scales"] = ("F16", RNG.standard_normal((groups, o)).astype(np.float16))
            gptq[f"{p}.g_idx"] = ("I32", np.zeros((n,), dtype=np.int32))
    folder("autogptq", "quantize_config.json", {
        "bits": 4, "group_size": 128, "damp_percent": 0.01, "desc_act": False,
        "static_groups": False, "sym": True, "true_sequential": True,
        "model_name_or_path": None, "model_file_base_name": "model"}, gptq)
    folder("autoawq-config-only", "quant_config.json", {
        "zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM"})
    folder("modelopt-nvfp4-config-only", "hf_quant_config.json", {
        "producer": {"name": "modelopt", "version": "0.29.0"},
        "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": None, "group_size": 16,
                         "exclude_modules": ["lm_head"]}})
    return dirs


def write_sharded_safetensors(out: Path, d: Path):
    d.mkdir(parents=True, exist_ok=True)
    shard1 = {
        "model.embed_tokens.weight": ("BF16", RNG.integers(0, 2**16, size=(32, 64), dtype=np.uint16)),
        "model.layers.0.self_attn.q_proj.weight": ("BF16", RNG.integers(0, 2**16, size=(64, 64), dtype=np.uint16)),
        "model.layers.0.input_layernorm.weight": ("F32", np.ones(64, dtype=np.float32)),
    }
    shard2 = {
        "model.layers.1.self_attn.q_proj.weight": ("F16", np.zeros((64, 64), dtype=np.float16)),
        "model.norm.weight": ("F32", np.ones(64, dtype=np.float32)),
        "lm_head.weight": ("BF16", RNG.integers(0, 2**16, size=(32, 64), dtype=np.uint16)),
    }
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    shard1 = save_safetensors(d / names[0], shard1, {"format": "pt"})
    shard2 = save_safetensors(d / names[1], shard2, {"format": "pt"})
    recs = st_record(shard1, names[0]) + st_record(shard2, names[1])
    total = sum(r["n_bytes"] for r in recs)
    weight_map = {r["name"]: r["shard"] for r in recs}
    (d / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (d / "config.json").write_text(json.dumps(LLAMA_CONFIG, indent=2))
    return {"dir": rel(out, d), "index": rel(out, d / "model.safetensors.index.json"),
            "shards": names, "tensors": recs, "total_bytes": total,
            "total_params": sum(r["n_elements"] for r in recs)}


# ----------------------------------------------------------------------------------------------
# Stores
# ----------------------------------------------------------------------------------------------

def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_hf_cache(out: Path, single_dir: Path):
    hub = out / "hf_cache" / "hub"
    repo = hub / "models--test-org--tiny-llama"
    rev = hashlib.sha1(b"vramplan fixture revision").hexdigest()
    snap = repo / "snapshots" / rev
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    for name in ("config.json", "model.safetensors"):
        src = single_dir / name
        digest = sha256_file(src)
        shutil.copyfile(src, repo / "blobs" / digest)
        os.symlink(f"../../blobs/{digest}", snap / name)
    # An older snapshot that refs/main does not point to: must not be chosen.
    old = repo / "snapshots" / ("0" * 40)
    old.mkdir()
    (old / "config.json").write_text("{}")
    return {"hub": rel(out, hub), "repo": "test-org/tiny-llama", "revision": rev,
            "snapshot": rel(out, snap)}


def write_ollama(out: Path, gguf_path: Path):
    models = out / "ollama" / "models"
    blobs = models / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    digest = sha256_file(gguf_path)
    shutil.copyfile(gguf_path, blobs / f"sha256-{digest}")
    template = b"{{ .Prompt }}"
    tdigest = hashlib.sha256(template).hexdigest()
    (blobs / f"sha256-{tdigest}").write_bytes(template)
    cfg = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
    cdigest = hashlib.sha256(cfg).hexdigest()
    (blobs / f"sha256-{cdigest}").write_bytes(cfg)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": f"sha256:{cdigest}", "size": len(cfg)},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}",
             "size": gguf_path.stat().st_size},
            {"mediaType": "application/vnd.ollama.image.template", "digest": f"sha256:{tdigest}",
             "size": len(template)},
        ],
    }
    mdir = models / "manifests" / "registry.ollama.ai" / "library" / "tiny"
    mdir.mkdir(parents=True, exist_ok=True)
    (mdir / "latest").write_text(json.dumps(manifest))
    return {"models_dir": rel(out, models), "name": "tiny:latest",
            "manifest": rel(out, mdir / "latest"), "blob": rel(out, blobs / f"sha256-{digest}")}


# ----------------------------------------------------------------------------------------------
# config.json variants (synthetic values in the real layouts; only parsing is under test)
# ----------------------------------------------------------------------------------------------

CONFIGS = {
    "vlm_text_config.json": (
        {
            "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "torch_dtype": "bfloat16",
            "text_config": {
                "model_type": "gemma3_text", "hidden_size": 2560, "intermediate_size": 10240,
                "num_hidden_layers": 34, "sliding_window": 1024, "sliding_window_pattern": 6,
                "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                "max_position_embeddings": 131072, "vocab_size": 262208,
            },
            "vision_config": {"hidden_size": 1152, "num_hidden_layers": 27},
        },
        {"num_hidden_layers": 34, "hidden_size": 2560, "num_attention_heads": 8,
         "num_key_value_heads": 4, "head_dim": 256, "intermediate_size": 10240,
         "sliding_window": 1024, "sliding_window_pattern": 6, "torch_dtype": "bfloat16",
         "from_text_config": True, "model_type": "gemma3_text"},
    ),
    "moe_mla.json": (
        {
            "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
            "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
            "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
            "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
            "first_k_dense_replace": 3, "moe_layer_freq": 1, "kv_lora_rank": 512,
            "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
            "v_head_dim": 128, "vocab_size": 129280, "max_position_embeddings": 163840,
            "torch_dtype": "bfloat16", "tie_word_embeddings": False,
            "quantization_config": {"quant_method": "fp8", "fmt": "e4m3",
                                    "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
        },
        {"num_experts": 256, "num_experts_per_tok": 8, "num_shared_experts": 1,
         "moe_intermediate_size": 2048, "first_k_dense_replace": 3, "kv_lora_rank": 512,
         "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
         "quant_method": "fp8", "weight_block_size": [128, 128]},
    ),
    "awq.json": (
        {
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
            "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
            "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768,
            "sliding_window": 131072, "use_sliding_window": False, "max_window_layers": 28,
            "torch_dtype": "float16",
            "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128,
                                    "version": "gemm", "zero_point": True,
                                    "modules_to_not_convert": ["lm_head"]},
        },
        {"quant_method": "awq", "bits": 4, "group_size": 128,
         "modules_not_converted": ["lm_head"], "use_sliding_window": False},
    ),
    "mixtral.json": (
        {
            "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
            "vocab_size": 32000, "max_position_embeddings": 32768, "sliding_window": None,
            "torch_dtype": "bfloat16",
        },
        {"num_experts": 8, "num_experts_per_tok": 2, "sliding_window": None},
    ),
}


# ----------------------------------------------------------------------------------------------
# The loopback Hub (crates/testhub): repositories, and real-shaped models kept as heads
# ----------------------------------------------------------------------------------------------

# Llama-3.1-70B's config.json (https://huggingface.co/meta-llama/Llama-3.1-70B/blob/main/config.json).
LLAMA_70B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 8192,
    "initializer_range": 0.02, "intermediate_size": 28672, "max_position_embeddings": 131072,
    "mlp_bias": False, "model_type": "llama", "num_attention_heads": 64,
    "num_hidden_layers": 80, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256,
}


def sparse_ok(path: Path) -> bool:
    """Whether a file truncated to a large size takes (almost) no disk: only then is a
    real-shaped file checked with the reference readers (which want the whole length)."""
    st = os.stat(path)
    return getattr(st, "st_blocks", 0) * 512 < (64 << 20)


def llama70_tensors():
    h, f, v, kv = 8192, 28672, 128256, 1024
    t = [("model.embed_tokens.weight", [v, h])]
    for i in range(80):
        p = f"model.layers.{i}."
        t += [(p + "self_attn.q_proj.weight", [h, h]), (p + "self_attn.k_proj.weight", [kv, h]),
              (p + "self_attn.v_proj.weight", [kv, h]), (p + "self_attn.o_proj.weight", [h, h]),
              (p + "mlp.gate_proj.weight", [f, h]), (p + "mlp.up_proj.weight", [f, h]),
              (p + "mlp.down_proj.weight", [h, f]), (p + "input_layernorm.weight", [h]),
              (p + "post_attention_layernorm.weight", [h])]
    t += [("model.norm.weight", [h]), ("lm_head.weight", [v, h])]
    return t


def safetensors_head(tensors):
    """The 8-byte length and the JSON header of a bf16 safetensors file holding `tensors`
    (name, shape), to the format's layout (safetensors README; the package's serializer pads
    the header with spaces to 8 bytes). Returns (head bytes, file length)."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, shape in sorted(tensors):
        n = 2 * int(np.prod(shape, dtype=np.int64))
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
        off += n
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    head = len(js).to_bytes(8, "little") + js
    return head, len(head) + off


def write_llama70_shards(hub: Path, n_shards=30):
    d = hub / "heads" / "llama70-30"
    d.mkdir(parents=True, exist_ok=True)
    tensors = llama70_tensors()
    total = sum(2 * int(np.prod(s, dtype=np.int64)) for _, s in tensors)
    per, shards, cur, cur_bytes = total / n_shards, [], [], 0
    for name, shape in tensors:
        n = 2 * int(np.prod(shape, dtype=np.int64))
        if cur and cur_bytes + n > per and len(shards) < n_shards - 1:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append((name, shape))
        cur_bytes += n
    shards.append(cur)
    assert len(shards) == n_shards, len(shards)
    files, weight_map = [], {}
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{n_shards:05d}.safetensors"
        head, size = safetensors_head(shard)
        (d / fname).write_bytes(head)
        # The reference reader on the real length (a sparse file), then only the head is kept.
        full = d / (fname + ".sparse")
        with open(full, "wb") as f:
            f.write(head)
            f.truncate(size)
        if sparse_ok(full):
            from safetensors import safe_open
            with safe_open(str(full), framework="numpy") as sf:
                assert sorted(sf.keys()) == sorted(n for n, _ in shard)
                for name, shape in shard:
                    assert list(sf.get_slice(name).get_shape()) == shape
        full.unlink()
        files.append({"path": fname, "head": f"heads/llama70-30/{fname}", "size": size})
        for name, _ in shard:
            weight_map[name] = fname
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (d / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (d / "config.json").write_text(json.dumps(LLAMA_70B_CONFIG, indent=2))
    files += [{"path": "model.safetensors.index.json",
               "local": "heads/llama70-30/model.safetensors.index.json"},
              {"path": "config.json", "local": "heads/llama70-30/config.json"}]
    params = sum(int(np.prod(s, dtype=np.int64)) for _, s in tensors)
    return files, {"tensors": len(tensors), "params": params, "weights_bytes": total,
                   "shards": n_shards}


def use_more_bits(i, n):
    """llama.cpp llama-quant.cpp use_more_bits: the layers Q4_K_M gives Q6_K."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def write_llama70_gguf(hub: Path):
    """A Llama-3.1-70B-shaped Q4_K_M GGUF: header, metadata (a 128256-token vocabulary and
    280147 merges, as Llama 3's) and tensor infos by GGUFWriter; the data is only a length."""
    d = hub / "heads" / "llama70-gguf"
    d.mkdir(parents=True, exist_ok=True)
    name = "Llama-3.1-70B-shaped-Q4_K_M.gguf"
    path = d / name
    w = gguf.GGUFWriter(str(path), "llama")
    h, f, v, kv, layers = 8192, 28672, 128256, 1024, 80
    w.add_name("Llama 3.1 70B shaped")
    w.add_uint32("general.file_type", 15)  # MOSTLY_Q4_K_M
    w.add_quantization_version(2)
    w.add_uint32("llama.block_count", layers)
    w.add_uint32("llama.context_length", 131072)
    w.add_uint32("llama.embedding_length", h)
    w.add_uint32("llama.feed_forward_length", f)
    w.add_uint32("llama.attention.head_count", 64)
    w.add_uint32("llama.attention.head_count_kv", 8)
    w.add_uint32("llama.rope.dimension_count", 128)
    w.add_float32("llama.rope.freq_base", 500000.0)
    w.add_float32("llama.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32("llama.vocab_size", v)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "llama-bpe")
    w.add_array("tokenizer.ggml.tokens", [f"\u0120t{i:06d}" for i in range(v)])
    w.add_array("tokenizer.ggml.token_type", [1] * v)
    w.add_array("tokenizer.ggml.merges", [f"\u0120m{i:05x} n{i:05x}" for i in range(280147)])
    w.add_uint32("tokenizer.ggml.bos_token_id", 128000)
    w.add_uint32("tokenizer.ggml.eos_token_id", 128009)

    def q(name, rows, cols, qt):
        block, size = gguf.GGML_QUANT_SIZES[qt]
        w.add_tensor_info(name, (rows, cols // block * size), np.dtype(np.uint8),
                          rows * (cols // block) * size, raw_dtype=qt)

    def f32(name, n):
        w.add_tensor_info(name, (n,), np.dtype(np.float32), 4 * n)

    q("token_embd.weight", v, h, Q.Q4_K)
    for i in range(layers):
        p = f"blk.{i}."
        f32(p + "attn_norm.weight", h)
        q(p + "attn_q.weight", h, h, Q.Q4_K)
        q(p + "attn_k.weight", kv, h, Q.Q4_K)
        q(p + "attn_v.weight", kv, h, Q.Q6_K if use_more_bits(i, layers) else Q.Q4_K)
        q(p + "attn_output.weight", h, h, Q.Q4_K)
        f32(p + "ffn_norm.weight", h)
        q(p + "ffn_gate.weight", f, h, Q.Q4_K)
        q(p + "ffn_up.weight", f, h, Q.Q4_K)
        q(p + "ffn_down.weight", h, f, Q.Q6_K if use_more_bits(i, layers) else Q.Q4_K)
    f32("output_norm.weight", h)
    q("output.weight", v, h, Q.Q6_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    infos = w.tensors[0].values()
    head_len = path.stat().st_size
    data_start = gguf.GGUFWriter.ggml_pad(head_len, 32)
    size = data_start + sum(gguf.GGUFWriter.ggml_pad(t.nbytes, 32) for t in infos)
    full = d / (name + ".sparse")
    shutil.copyfile(path, full)
    with open(full, "r+b") as fh:
        fh.truncate(size)
    if sparse_ok(full):
        r = gguf.GGUFReader(str(full))
        assert len(r.tensors) == 3 + layers * 9, len(r.tensors)
    full.unlink()
    return ({"path": name, "head": f"heads/llama70-gguf/{name}", "size": size},
            {"header_bytes": head_len, "tensors": 3 + layers * 9,
             "weights_bytes": sum(t.nbytes for t in infos)})


def fake_sha(name: str) -> str:
    return hashlib.sha1(f"vramplan hub fixture {name}".encode()).hexdigest()


def write_hub(out: Path, expected: dict):
    hub = out / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "README.md").write_text("A fixture repository for vramplan's loopback Hub.\n")
    (hub / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not read" + bytes(1000))
    cfg = "../safetensors/single/config.json"
    hostile = hub / "hostile.safetensors"
    # A header length of 2^62: refused before anything is allocated for it.
    hostile.write_bytes((1 << 62).to_bytes(8, "little") + b"{" + bytes(4095))
    sh = expected["safetensors_sharded"]
    split = expected["gguf_split"]["part_paths"]
    readme = {"path": "README.md", "local": "README.md"}
    single = [{"path": "model.safetensors", "local": "../safetensors/single/model.safetensors"},
              {"path": "config.json", "local": cfg}, readme]
    big_files, big = write_llama70_shards(hub)
    gguf_file, gguf_big = write_llama70_gguf(hub)
    repos = [
        {"id": "test-org/tiny-sharded", "files": [
            {"path": p, "local": f"../{sh['dir']}/{p}"} for p in sh["shards"]
        ] + [{"path": "model.safetensors.index.json", "local": f"../{sh['index']}"},
             {"path": "config.json", "local": f"../{sh['dir']}/config.json"}, readme]},
        {"id": "test-org/tiny-llama", "revisions": ["v1.0"], "files": single},
        {"id": "test-org/gated-llama", "gated": "manual", "files": single},
        {"id": "test-org/private-llama", "private": True, "files": single},
        {"id": "test-org/tiny-gguf", "files": [
            {"path": "tiny-Q4_K_M.gguf", "local": "../gguf/basic.gguf"},
            {"path": "Q8_0/tiny-Q8_0-00001-of-00002.gguf", "local": f"../{split[0]}"},
            {"path": "Q8_0/tiny-Q8_0-00002-of-00002.gguf", "local": f"../{split[1]}"},
            {"path": "mmproj-tiny-F16.gguf", "local": "../gguf/align64.gguf"}, readme]},
        {"id": "test-org/tiny-gguf-one", "files": [
            {"path": "tiny-Q4_K_M.gguf", "local": "../gguf/basic.gguf"}, readme]},
        {"id": "test-org/config-only", "files": [{"path": "config.json", "local": cfg}, readme]},
        {"id": "test-org/pytorch-only", "files": [
            {"path": "config.json", "local": cfg},
            {"path": "pytorch_model.bin", "local": "pytorch_model.bin"}, readme]},
        {"id": "test-org/hostile-header", "files": [
            {"path": "model.safetensors", "local": "hostile.safetensors"},
            {"path": "config.json", "local": cfg}]},
        {"id": "test-org/no-model", "files": [readme]},
    ] + [
        # The quantized folders as repos (the same files: the answers must be the same).
        {"id": f"test-org/{name}", "files": [
            {"path": f, "local": f"../{q['dir']}/{f}"}
            for f in ["config.json", q["side"]] + (["model.safetensors"] if "total_bytes" in q else [])
        ] + [readme]}
        for name, q in expected["quantized"].items()
    ] + [
        {"id": "loopback/Llama-3.1-70B-shaped", "files": big_files + [readme]},
        {"id": "loopback/Llama-3.1-70B-shaped-GGUF", "files": [gguf_file, readme]},
    ]
    for r in repos:
        r["sha"] = fake_sha(r["id"])
    (hub / "repos.json").write_text(json.dumps(repos, indent=1))
    # The ollama registry: the store's manifest and its model blob.
    ol = expected["ollama"]
    manifest = json.loads((out / ol["manifest"]).read_text())
    digest = next(l["digest"] for l in manifest["layers"]
                  if l["mediaType"] == "application/vnd.ollama.image.model")
    registry = [{"name": "library/tiny", "tag": "latest", "manifest": f"../{ol['manifest']}",
                 "blobs": {digest: {"path": digest, "local": f"../{ol['blob']}"}}}]
    (hub / "registry.json").write_text(json.dumps(registry, indent=1))
    return {"repos": {r["id"]: r["sha"] for r in repos}, "llama70_shards": big,
            "llama70_gguf": gguf_big, "ollama": {"name": "tiny:latest", "digest": digest}}


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[0])
        print("usage: gen_fixtures.py OUTDIR", file=sys.stderr)
        sys.exit(2)
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("gguf", "safetensors", "hf_cache", "ollama", "configs", "hub", "quantized"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "gguf").mkdir()

    expected = {
        "writers": {"gguf": importlib.metadata.version("gguf"),
                    "safetensors": safetensors.__version__, "numpy": np.__version__},
        "gguf": {},
    }
    for name, kwargs in (
        ("basic.gguf", {}),
        ("big_endian.gguf", {"endianess": gguf.GGUFEndian.BIG}),
        ("align64.gguf", {"alignment": 64}),
    ):
        expected["gguf"][name] = write_basic_gguf(out, out / "gguf" / name, **kwargs)
    expected["gguf_split"] = write_split_gguf(out, out / "gguf" / "split")
    expected["safetensors_single"] = write_single_safetensors(out, out / "safetensors" / "single")
    expected["safetensors_sharded"] = write_sharded_safetensors(out, out / "safetensors" / "sharded")
    expected["hf_cache"] = write_hf_cache(out, out / "safetensors" / "single")
    expected["ollama"] = write_ollama(out, out / "gguf" / "basic.gguf")
    expected["quantized"] = write_quantized(out)
    expected["hub"] = write_hub(out, expected)
    (out / "configs").mkdir()
    expected["configs"] = {}
    for name, (cfg, fields) in CONFIGS.items():
        (out / "configs" / name).write_text(json.dumps(cfg, indent=2))
        expected["configs"][name] = fields
    (out / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False))
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    main()
