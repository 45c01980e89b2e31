#!/usr/bin/env python3
"""Writes crates/core/data/transformers/config_classes.json: for every configuration class of the
pinned transformers release, the facts a config.json leaves out because they are the class's own:

- `defaults`: each dataclass field's default value (scalars and short lists; None and fields
  that cannot change memory are left out). `save_pretrained` writes only what differs from these
  (`to_json_string(use_diff=True)`), so a real config.json omits them and the mapping must know
  them (e.g. gemma3_text's head counts).
- `attribute_map`: the class's alternative names (GPT-2's `n_embd` is `hidden_size`).
- `sub_configs`: the model_type of each nested config's default class (text_config, vision_config...).
- `class`, `module`: where the rule comes from (cited in errors and the README).

Values computed in `__post_init__` (head_dim = hidden // heads, layer_types from a pattern) are
NOT defaults: the mapping derives them itself, per family, from the same rules.

Needs only `transformers` (no torch): `python3 -m venv .venv-tf && .venv-tf/bin/pip install
transformers==5.24.0 && .venv-tf/bin/python scripts/arch/config_classes.py`. Takes ~10 s.
"""
import dataclasses
import json
import math
import os
import sys

import transformers
from transformers import CONFIG_MAPPING

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "core", "data", "transformers", "config_classes.json")

# Fields that never change memory: left out to keep the file small.
SKIP_SUBSTRINGS = ("dropout", "initializer", "init_", "_token_id", "token_index", "label", "eps", "epsilon",
                   "rope_theta", "rope_scaling", "rope_parameters", "loss", "softcap", "temperature", "multiplier",
                   "jitter", "_std", "scale_factor", "noise", "tokenizer", "problem_type", "output_", "return_dict",
                   "pruned_heads", "torchscript", "use_return", "chunk_size_feed_forward", "pdrop", "summary_",
                   "finetuning_task", "prefix", "task_specific", "_name_or_path", "transformers_version", "use_cache",
                   "is_decoder", "add_cross_attention", "tie_encoder_decoder", "cross_attention_hidden_size",
                   "hidden_act", "hidden_activation", "activation", "act_fn")
MAX_LIST = 16


def keep(name, value):
    if value is None or name.startswith("_"):
        return False
    low = name.lower()
    if low in ("dtype", "torch_dtype"):
        return False
    if any(s in low for s in SKIP_SUBSTRINGS):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False  # JSON has no Infinity/NaN
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return len(value) <= MAX_LIST and all(
            isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v)) for v in value
        )
    return False


def field_default(f):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        try:
            return f.default_factory()  # type: ignore[misc]
        except Exception:
            return None
    return None


def describe(cls):
    out = {"class": cls.__name__, "module": cls.__module__.replace("transformers.", "")}
    defaults = {}
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            v = field_default(f)
            if isinstance(v, tuple):
                v = list(v)
            if keep(f.name, v):
                defaults[f.name] = v
    out["defaults"] = dict(sorted(defaults.items()))
    amap = dict(getattr(cls, "attribute_map", {}) or {})
    if amap:
        out["attribute_map"] = dict(sorted(amap.items()))
    subs = {}
    for key, spec in (getattr(cls, "sub_configs_defaults", None) or {}).items():
        mt = getattr(spec, "model_type", None) or getattr(getattr(spec, "config_class", None), "model_type", None)
        if mt:
            subs[key] = mt
    if subs:
        out["sub_configs"] = dict(sorted(subs.items()))
    return out


def main():
    table = {}
    for model_type in sorted(CONFIG_MAPPING.keys()):
        try:
            cls = CONFIG_MAPPING[model_type]
        except Exception as e:  # a config class that cannot be imported
            print(f"skip {model_type}: {e}", file=sys.stderr)
            continue
        table[model_type] = describe(cls)
    doc = {
        "source": f"transformers=={transformers.__version__} configuration classes (CONFIG_MAPPING), "
                  "dataclass field defaults; regenerate with scripts/arch/config_classes.py",
        "transformers_version": transformers.__version__,
        "classes": table,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"), sort_keys=False, allow_nan=False)
        f.write("\n")
    print(f"{len(table)} classes -> {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
