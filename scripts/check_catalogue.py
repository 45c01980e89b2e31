#!/usr/bin/env python3
"""Validate the model catalogue kept as stored config.json files (crates/core/data/catalogue).

Layout (crates/core/data/SCHEMA.md, "catalogue/"): one directory per Hugging Face repo id,
`catalogue/<org>/<name>/`, holding `meta.toml` and, unless the entry reuses its base's
architecture (`config_from_base = true`), the model's `config.json`.

Checks (a failure exits 1 and names the entry and the fix):
  - every entry directory has a meta.toml that parses, whose `id` is its directory path;
  - required keys are present and of the right type; `config_copy` is "verbatim" or "transcribed"
    and a verbatim copy names where it was found (`config_copy_from`);
  - every config.json parses as a JSON object; an entry with `config_from_base` has none;
  - ids and aliases are unique (case-insensitively, as the catalogue matches them);
  - every `base` names an entry of the catalogue, without cycles;
  - quantization tables use the methods the estimator knows.

Then, while the old hand-transcribed tables (crates/core/data/models/*.toml) still exist, each
config.json is compared with the old entry on the fields the old entry had (layers, hidden size,
heads, KV heads, head_dim, MLP width, vocabulary, context, tied embeddings, dtype, MoE, MLA,
sliding window, SSM and vision numbers) and every disagreement is printed. Disagreements are
findings, not failures (`--strict` makes them fail): where the config.json is a verbatim copy,
the old transcription was wrong.

Usage: scripts/check_catalogue.py [--strict] [--quiet]      (Python 3.11+, standard library only)
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "crates" / "core" / "data"
CATALOGUE = DATA / "catalogue"
OLD_MODELS = DATA / "models"

META_KEYS = {
    # key: (type, required)
    "id": (str, True),
    "aliases": (list, True),
    "family": (str, False),
    "config_source": (str, True),
    "config_copy": (str, False),
    "config_copy_from": (str, False),
    "config_from_base": (bool, False),
    "base": (str, False),
    "published_params": (int, False),
    "published_params_source": (str, False),
    "nominal_params": (int, False),
    "nominal_params_source": (str, False),
    "max_context": (int, False),
    "max_context_source": (str, False),
    "dtype": (str, False),
    "dtype_source": (str, False),
    "notes": (str, False),
    "quantization": (dict, False),
}
QUANT_METHODS = {"awq", "gptq", "fp8", "w8a8", "w4a16", "mxfp4", "bnb-nf4", "bnb-int8"}
QUANT_KEYS = {"method", "bits", "group_size", "source"}
DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
# Config classes whose `tie_word_embeddings` default is False (transformers' PretrainedConfig
# default is True; these classes override it). Used only when a config.json omits the key.
UNTIED_BY_DEFAULT = {
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gpt_neox", "gptj", "phi",
    "phi3", "phimoe", "deepseek_v2", "deepseek_v3", "granite", "jamba", "dbrx", "llama4_text", "gpt_oss",
}


def first(d: dict, *keys, default=None):
    """The first of `keys` present in `d` with a non-null value."""
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return default


def text_part(cfg: dict) -> dict:
    """The language model's config: `text_config` (or `llm_config`) when the model is multimodal.

    Multimodal configs may list only the text keys that differ from the text config class's
    defaults; the keys they omit are absent here and are not compared."""
    for k in ("text_config", "llm_config", "language_config"):
        if isinstance(cfg.get(k), dict):
            merged = dict(cfg[k])
            # a few keys live at the top level of multimodal configs
            for top in ("torch_dtype", "dtype", "tie_word_embeddings"):
                if top not in merged and top in cfg:
                    merged[top] = cfg[top]
            return merged
    return cfg


def derive(cfg: dict) -> dict:
    """The old TOML's architecture fields, read from a config.json (None = not stated there)."""
    t = text_part(cfg)
    out: dict = {}
    out["num_layers"] = first(t, "num_hidden_layers", "n_layer", "num_layers", "n_layers")
    hidden = first(t, "hidden_size", "n_embd", "d_model")
    out["hidden_size"] = hidden
    heads = first(t, "num_attention_heads", "n_head", "n_heads", "num_heads")
    out["num_attention_heads"] = heads
    attn = t.get("attn_config") if isinstance(t.get("attn_config"), dict) else {}
    kv = first(t, "num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
    if kv is None:
        kv = attn.get("kv_n_heads")
    if kv is None and t.get("multi_query") is True and not t.get("new_decoder_architecture"):
        kv = 1
    if kv is None and heads is not None:
        kv = heads
    out["num_kv_heads"] = kv
    if t.get("kv_lora_rank") is not None:
        out["head_dim"] = (t.get("qk_nope_head_dim") or 0) + (t.get("qk_rope_head_dim") or 0)
    else:
        hd = t.get("head_dim")
        if hd is None and hidden and heads:
            hd = hidden // heads
        out["head_dim"] = hd
    ffn = t.get("ffn_config") if isinstance(t.get("ffn_config"), dict) else {}
    inter = first(t, "intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size")
    if inter is None:
        inter = ffn.get("ffn_hidden_size")
    if t.get("intermediate_size_mlp") is not None:
        inter = t["intermediate_size_mlp"]  # Llama 4: the dense layers' width
    if inter is None and hidden:
        inter = 4 * hidden  # GPT-2, BLOOM, Falcon: n_inner / ffn_hidden_size null -> 4 x hidden
    out["intermediate_size"] = inter
    out["vocab_size"] = t.get("vocab_size")
    out["max_context"] = first(t, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
    tie = first(cfg, "tie_word_embeddings")
    if tie is None:
        tie = t.get("tie_word_embeddings")
    if tie is None:
        tie = t.get("model_type", cfg.get("model_type")) not in UNTIED_BY_DEFAULT
    out["tie_embeddings"] = tie
    dt = first(cfg, "torch_dtype", "dtype")
    if dt is None:
        dt = first(t, "torch_dtype", "dtype")
    out["dtype"] = DTYPES.get(dt, dt)
    # MoE
    n_exp = first(t, "num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
    if n_exp is None:
        n_exp = ffn.get("moe_num_experts")
    if n_exp:
        moe = {"num_experts": n_exp}
        moe["experts_per_token"] = first(t, "num_experts_per_tok", "experts_per_token", "moe_topk", "moe_k")
        if moe["experts_per_token"] is None:
            moe["experts_per_token"] = ffn.get("moe_top_k")
        moe["expert_intermediate_size"] = first(t, "moe_intermediate_size", "expert_intermediate_size")
        if moe["expert_intermediate_size"] is None and t.get("intermediate_size_mlp") is not None:
            moe["expert_intermediate_size"] = t.get("intermediate_size")
        if moe["expert_intermediate_size"] is None:
            moe["expert_intermediate_size"] = out["intermediate_size"]
        shared = first(t, "n_shared_experts", "num_shared_experts")
        if shared is None and t.get("shared_expert_intermediate_size"):
            shared = 1
        if shared is None and t.get("model_type") in ("llama4_text",):
            shared = 1
        moe["shared_experts"] = shared or 0
        if t.get("first_k_dense_replace") is not None:
            moe["dense_leading_layers"] = t["first_k_dense_replace"]
        out["moe"] = moe
    if t.get("kv_lora_rank") is not None:
        out["mla"] = {
            "kv_lora_rank": t["kv_lora_rank"],
            "q_lora_rank": t.get("q_lora_rank") or 0,
            "qk_rope_head_dim": t.get("qk_rope_head_dim"),
            "qk_nope_head_dim": t.get("qk_nope_head_dim"),
            "v_head_dim": t.get("v_head_dim"),
        }
    window = t.get("sliding_window")
    if t.get("use_sliding_window") is False:
        window = None
    if t.get("attention_chunk_size"):
        window = t["attention_chunk_size"]
    out["window"] = window
    if t.get("mamba_d_state") is not None or t.get("attn_layer_period") is not None:
        out["ssm"] = {
            "d_state": t.get("mamba_d_state"),
            "d_conv": t.get("mamba_d_conv"),
            "expand": t.get("mamba_expand"),
            "attn_layer_period": t.get("attn_layer_period"),
            "attn_layer_offset": t.get("attn_layer_offset"),
        }
    v = cfg.get("vision_config")
    if isinstance(v, dict):
        out["vision"] = {
            "layers": first(v, "num_hidden_layers", "depth", "num_layers"),
            "hidden_size": first(v, "hidden_size", "embed_dim"),
            "intermediate_size": first(v, "intermediate_size"),
            "patch_size": first(v, "patch_size"),
            "image_size": first(v, "image_size"),
        }
        if out["vision"]["image_size"] is None and v.get("init_pos_emb_height") and v.get("patch_size"):
            # MoonViT: native resolution over an interpolated init_pos_emb_height^2 position table
            out["vision"]["image_size"] = v["init_pos_emb_height"] * v["patch_size"]
    return out


def old_entries() -> dict[str, dict]:
    """The old hand-transcribed entries with `base` resolved (architecture keys from the base)."""
    raw: dict[str, dict] = {}
    if not OLD_MODELS.is_dir():
        return raw
    for f in sorted(OLD_MODELS.glob("*.toml")):
        for m in tomllib.loads(f.read_text()).get("model", []):
            raw[m["id"].lower()] = m
    resolved = {}
    for key, m in raw.items():
        arch = m
        seen = 0
        while "base" in arch and seen < 8:
            arch = raw.get(arch["base"].lower(), {})
            seen += 1
        resolved[key] = {**arch, **{k: m[k] for k in ("id", "quantization") if k in m}}
    return resolved


def compare(old: dict, new: dict) -> list[str]:
    """Disagreements between an old TOML entry and the fields read from the config.json."""
    diffs = []

    def cmp(label, o, n):
        if o is None:
            return
        if n is None:
            diffs.append(f"{label}: old {o}, config.json does not state it")
        elif o != n:
            diffs.append(f"{label}: old {o}, config.json {n}")

    for k in ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads", "head_dim",
              "intermediate_size", "vocab_size", "max_context", "dtype"):
        if k == "intermediate_size" and "moe" in old and "moe" in new and old.get("moe", {}).get("dense_leading_layers", 0) == 0 and "dense_intermediate_size" not in old.get("moe", {}):
            # every layer MoE: the dense width is unused (Mixtral writes the expert width there)
            continue
        cmp(k, old.get(k), new.get(k))
    cmp("tie_embeddings", old.get("tie_embeddings", False), bool(new.get("tie_embeddings")) if new.get("tie_embeddings") is not None else None)
    om, nm = old.get("moe"), new.get("moe")
    if om:
        if not nm:
            diffs.append("moe: old entry is MoE, config.json names no experts")
        else:
            for k in ("num_experts", "experts_per_token", "expert_intermediate_size", "shared_experts", "dense_leading_layers"):
                if k in om or k == "shared_experts":
                    cmp(f"moe.{k}", om.get(k, 0), nm.get(k, 0))
    elif nm:
        diffs.append(f"moe: config.json has {nm['num_experts']} experts, old entry is dense")
    if old.get("mla"):
        for k, o in old["mla"].items():
            cmp(f"mla.{k}", o, (new.get("mla") or {}).get(k))
    sw = old.get("sliding_window")
    if sw:
        cmp("sliding_window.window", sw.get("window"), new.get("window"))
    elif new.get("window") and new.get("window") < (new.get("max_context") or 0):
        diffs.append(f"sliding_window: config.json has a window of {new['window']}, old entry has none")
    if old.get("ssm"):
        for k in ("d_state", "d_conv", "expand", "attn_layer_period", "attn_layer_offset"):
            cmp(f"ssm.{k}", old["ssm"].get(k), (new.get("ssm") or {}).get(k))
    if old.get("vision"):
        for k in ("layers", "hidden_size", "intermediate_size", "patch_size", "image_size"):
            cmp(f"vision.{k}", old["vision"].get(k), (new.get("vision") or {}).get(k))
    return diffs


def main() -> int:
    strict = "--strict" in sys.argv
    quiet = "--quiet" in sys.argv
    errors: list[str] = []
    entries: dict[str, dict] = {}
    configs: dict[str, dict] = {}
    for meta_path in sorted(CATALOGUE.rglob("meta.toml")):
        rel = meta_path.parent.relative_to(CATALOGUE).as_posix()
        try:
            meta = tomllib.loads(meta_path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            errors.append(f"{rel}/meta.toml: does not parse ({e}); fix the TOML syntax")
            continue
        for k, (ty, required) in META_KEYS.items():
            if k not in meta:
                if required:
                    errors.append(f"{rel}/meta.toml: missing `{k}`")
            elif not isinstance(meta[k], ty) or (ty is int and isinstance(meta[k], bool)):
                errors.append(f"{rel}/meta.toml: `{k}` must be a {ty.__name__}")
        for k in meta:
            if k not in META_KEYS:
                errors.append(f"{rel}/meta.toml: unknown key `{k}` (document it in SCHEMA.md first)")
        if meta.get("id") != rel:
            errors.append(f"{rel}/meta.toml: id {meta.get('id')!r} is not the directory path {rel!r}")
        cfg_path = meta_path.parent / "config.json"
        if meta.get("config_from_base"):
            if "base" not in meta:
                errors.append(f"{rel}: config_from_base without a `base`")
            if cfg_path.exists():
                errors.append(f"{rel}: config_from_base = true but a config.json is stored; drop one")
            if "config_copy" in meta:
                errors.append(f"{rel}: config_from_base entries have no `config_copy`")
        else:
            if meta.get("config_copy") not in ("verbatim", "transcribed"):
                errors.append(f"{rel}/meta.toml: config_copy must be \"verbatim\" or \"transcribed\"")
            if meta.get("config_copy") == "verbatim" and not meta.get("config_copy_from"):
                errors.append(f"{rel}/meta.toml: a verbatim copy names where it was found (config_copy_from)")
            if not cfg_path.exists():
                errors.append(f"{rel}: no config.json (store one, or set config_from_base = true with a base)")
            else:
                try:
                    cfg = json.loads(cfg_path.read_text())
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    errors.append(f"{rel}/config.json: does not parse ({e})")
                    cfg = None
                if cfg is not None and not isinstance(cfg, dict):
                    errors.append(f"{rel}/config.json: not a JSON object")
                elif cfg is not None:
                    configs[rel] = cfg
                    if "model_type" not in cfg and "architectures" not in cfg:
                        errors.append(f"{rel}/config.json: neither model_type nor architectures")
        q = meta.get("quantization")
        if isinstance(q, dict):
            if q.get("method") not in QUANT_METHODS:
                errors.append(f"{rel}/meta.toml: quantization.method {q.get('method')!r} not one of {sorted(QUANT_METHODS)}")
            for k in q:
                if k not in QUANT_KEYS:
                    errors.append(f"{rel}/meta.toml: unknown quantization key `{k}`")
        entries[rel] = meta
    # ids and aliases unique, case-insensitively
    names: dict[str, str] = {}
    for rel, meta in entries.items():
        for name in [meta.get("id", rel)] + list(meta.get("aliases", [])):
            key = str(name).lower()
            if key in names and names[key] != rel:
                errors.append(f"{rel}: name {name!r} is also used by {names[key]}")
            names[key] = rel
    # bases exist, no cycles
    lower = {k.lower(): k for k in entries}
    for rel, meta in entries.items():
        seen = {rel}
        cur = meta
        while "base" in cur:
            b = lower.get(cur["base"].lower())
            if b is None:
                errors.append(f"{rel}: base {cur['base']!r} is not in the catalogue")
                break
            if b in seen:
                errors.append(f"{rel}: base chain has a cycle through {b}")
                break
            seen.add(b)
            cur = entries[b]
    # comparison with the old tables
    old = old_entries()
    findings = 0
    if old and not quiet:
        print(f"Comparing {len(configs)} config.json files with the old tables (crates/core/data/models):")
    for rel, cfg in sorted(configs.items()):
        o = old.get(rel.lower())
        if o is None:
            continue
        diffs = compare(o, derive(cfg))
        meta = entries[rel]
        # fields the meta.toml states for the checkpoint when config.json lacks them
        for k in ("max_context", "dtype"):
            if k in meta:
                diffs = [d for d in diffs if not (d.startswith(f"{k}:") and meta[k] == o.get(k))]
        if diffs:
            findings += len(diffs)
            if not quiet:
                print(f"  {rel} ({meta.get('config_copy')}):")
                for d in diffs:
                    print(f"      {d}")
    # summary
    counts: dict[str, dict[str, int]] = {}
    for rel, meta in entries.items():
        fam = meta.get("family", "?")
        kind = "from_base" if meta.get("config_from_base") else meta.get("config_copy", "?")
        counts.setdefault(fam, {}).setdefault(kind, 0)
        counts[fam][kind] += 1
    if not quiet:
        print("\nEntries per family (verbatim / transcribed / config_from_base):")
        tot = {"verbatim": 0, "transcribed": 0, "from_base": 0}
        for fam in sorted(counts):
            c = counts[fam]
            for k in tot:
                tot[k] += c.get(k, 0)
            print(f"  {fam:<24} {c.get('verbatim', 0):>3} / {c.get('transcribed', 0):>3} / {c.get('from_base', 0):>3}")
        print(f"  {'total':<24} {tot['verbatim']:>3} / {tot['transcribed']:>3} / {tot['from_base']:>3}  ({len(entries)} entries)")
    for e in errors:
        print("error:", e, file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s) in {CATALOGUE.relative_to(ROOT)}", file=sys.stderr)
        return 1
    if findings:
        print(f"{findings} disagreement(s) with the old tables (findings; "
              + ("run without --quiet to list them)" if quiet else "listed above)"))
        if strict:
            return 1
    print(f"catalogue OK: {len(entries)} entries, {len(configs)} config.json files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
