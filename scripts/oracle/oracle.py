#!/usr/bin/env python3
"""transformers as the oracle for vramplan's config.json mapping (issue 12).

For every model type in transformers' MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and
MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES this builds the model from its DEFAULT config (the
config class called with no arguments) on the meta device, and writes what transformers itself
says about it: the config.json, the parameter counts (total, text model, per component, per
decoder layer), each decoder layer's mixer, and the shapes of the cache tensors that transformers
allocates for it during a forward pass on the meta device.

Nothing here is computed from formulas: every number is read off the objects transformers builds,
so the data can test a mapping that was written without looking at it. See README.md beside this
file for the output schema and how to regenerate it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import platform
import re
import sys
import time
import traceback
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText  # noqa: E402
from transformers.cache_utils import Cache, DynamicCache, get_layer_types_and_kwargs  # noqa: E402
from transformers.models.auto.configuration_auto import CONFIG_MAPPING  # noqa: E402
from transformers.models.auto.modeling_auto import (  # noqa: E402
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
)

transformers.logging.set_verbosity_error()
# On the meta device torch.nonzero cannot know its output size; with this flag it assumes every
# element is non-zero, which is enough for MoE routing to run (the cache never depends on it).
torch.fx.experimental._config.meta_nonzero_assume_all_nonzero = True

SCHEMA_VERSION = 1
# The two prompt lengths of the meta-device forward passes. A cache tensor whose shape is the same
# after both is a constant per-sequence state; one that grows along one dimension holds per-token
# K/V, and the growth divided by the difference of the lengths is its width per token. Both are
# below every default sliding window / chunk size, so windowed layers still grow.
SEQ_LENS = (5, 8)
# The dtype the model is built in for the forward passes: a cache tensor that comes out in
# float32 while the model runs in bfloat16 is one transformers keeps in float32 on purpose.
FORWARD_DTYPE = torch.bfloat16

AUTO_CLASSES = {
    "image-text-to-text": (MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES, AutoModelForImageTextToText),
    "causal-lm": (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, AutoModelForCausalLM),
}


def one_line(exc: BaseException) -> str:
    """The exception as one line: its type and the first non-empty line of its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    msg = lines[0] if lines else ""
    return f"{type(exc).__name__}: {msg}"[:300]


def where(exc: BaseException) -> str:
    """The innermost frame inside transformers that raised, as `file:line`, for debugging."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "transformers" in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename.split('site-packages/')[-1]}:{f.lineno}"


@contextlib.contextmanager
def quiet():
    """Silence the prints some model constructors make (they would interleave with our log)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def dtype_name(dt: torch.dtype) -> str:
    return str(dt).removeprefix("torch.")


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------


def first_owner_params(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Every parameter once, under the first name it is reachable by.

    `named_parameters()` (remove_duplicate=True, the default) skips a tensor it has already
    yielded, so a tied lm_head (the same Parameter object as the embedding) or a block shared
    between layers (Zamba) is counted once, under the name met first in module order.
    """
    return dict(model.named_parameters())


def module_path(model: torch.nn.Module, target: torch.nn.Module | None) -> str | None:
    if target is None:
        return None
    for name, mod in model.named_modules(remove_duplicate=False):
        if mod is target:
            return name
    return None


def under(name: str, prefix: str | None) -> bool:
    if prefix is None:
        return False
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def find_layers(decoder: torch.nn.Module, dec_path: str) -> tuple[str | None, torch.nn.ModuleList | None]:
    """The decoder's stack of layers: the ModuleList under it that holds the most parameters."""
    best = (None, None, -1)
    for name, mod in decoder.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0:
            n = sum(p.numel() for p in mod.parameters())
            if n > best[2] or (n == best[2] and best[0] is not None and len(name) < len(best[0])):
                best = (name, mod, n)
    if best[0] is None:
        return None, None
    full = f"{dec_path}.{best[0]}" if dec_path else best[0]
    return full, best[1]


VISION_RE = re.compile(r"vision|visual|image|vit\b|vit_|siglip|clip|pixel|patch|vqmodel|vq_model|img", re.I)
AUDIO_RE = re.compile(r"audio|speech|whisper|sound|acoustic|mel", re.I)
PROJECTOR_RE = re.compile(r"project|merger|connector|adapter|mm_|aligner|resampler|mlp1|multi_modal", re.I)
MTP_RE = re.compile(r"(^|\.)(mtp|nextn)", re.I)
NORM_RE = re.compile(r"norm|ln_f", re.I)


def component_kind(path: str) -> str:
    """A best-effort name for a module outside the text model; the path itself is also kept."""
    if MTP_RE.search(path):
        return "mtp"
    if PROJECTOR_RE.search(path.rsplit(".", 1)[-1]):
        return "projector"
    if AUDIO_RE.search(path):
        return "audio"
    if VISION_RE.search(path):
        return "vision"
    return "other"


def split_key(name: str, anchors: list[str]) -> str:
    """The shortest prefix of `name` that is neither one of `anchors` nor an ancestor of one."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if not any(a == prefix or a.startswith(prefix + ".") for a in anchors):
            return prefix
    return name


def rle(items: list, key=lambda x: x) -> list:
    """Run-length encode consecutive equal records as {"first": i, "count": n, **record}."""
    out = []
    for i, item in enumerate(items):
        k = json.dumps(key(item), sort_keys=True)
        if out and out[-1][0] == k:
            out[-1][1]["count"] += 1
        else:
            out.append((k, {"first": i, "count": 1, **item}))
    return [rec for _, rec in out]


def describe_params(model: torch.nn.Module) -> tuple[dict, dict]:
    """Parameter counts: total, text model, and a breakdown that adds up to the total."""
    params = first_owner_params(model)
    total = sum(p.numel() for p in params.values())

    decoder = model.get_decoder()
    dec_path = module_path(model, decoder)
    layers_path, layers = find_layers(decoder, dec_path)

    emb = model.get_input_embeddings()
    emb_path = module_path(model, emb)
    out_emb = model.get_output_embeddings()
    out_path = module_path(model, out_emb)
    out_weight = getattr(out_emb, "weight", None)
    tied = bool(out_weight is not None and emb is not None and out_weight is getattr(emb, "weight", None))

    buckets = {"embed_tokens": 0, "lm_head": 0, "final_norm": 0, "decoder_other": {}, "mtp": 0}
    per_layer = [0] * (len(layers) if layers is not None else 0)
    outside: dict[str, int] = {}
    text = 0
    anchors = [a for a in (dec_path, out_path) if a is not None]
    for name, p in params.items():
        n = p.numel()
        if MTP_RE.search(name):
            buckets["mtp"] += n
            # an MTP head is not part of the model engines serve, but it is in the checkpoint
            continue
        if under(name, emb_path):
            buckets["embed_tokens"] += n
            text += n
        elif under(name, out_path):
            buckets["lm_head"] += n
            text += n
        elif under(name, layers_path):
            idx = int(name[len(layers_path) + 1 :].split(".")[0])
            per_layer[idx] += n
            text += n
        elif under(name, dec_path):
            rel = name[len(dec_path) + 1 :] if dec_path else name
            child = rel.split(".")[0]
            mod = decoder.get_submodule(child) if child and hasattr(decoder, child) else None
            if mod is not None and NORM_RE.search(child) and "norm" in type(mod).__name__.lower():
                buckets["final_norm"] += n
            else:
                key = rel.rsplit(".", 1)[0] if "." in rel else rel
                # group by the decoder's direct child (e.g. embed_tokens_per_layer, altup_projections)
                key = child if child else key
                buckets["decoder_other"][key] = buckets["decoder_other"].get(key, 0) + n
            text += n
        else:
            key = split_key(name, anchors)
            outside[key] = outside.get(key, 0) + n

    components = {}
    for path, n in sorted(outside.items()):
        components[path] = {"kind": component_kind(path), "params": n}
    by_kind = {"vision": 0, "audio": 0, "projector": 0, "other": 0}
    for c in components.values():
        if c["kind"] == "mtp":
            buckets["mtp"] += c["params"]
        else:
            by_kind[c["kind"]] += c["params"]

    layer_runs = rle([{"params": n} for n in per_layer])
    breakdown = {
        "total": total,
        "text": text,
        "embed_tokens": buckets["embed_tokens"],
        "lm_head": buckets["lm_head"],
        "lm_head_tied": tied,
        "final_norm": buckets["final_norm"],
        "layers": sum(per_layer),
        "layers_rle": layer_runs,
        "decoder_other": buckets["decoder_other"],
        "vision": by_kind["vision"],
        "audio": by_kind["audio"],
        "projector": by_kind["projector"],
        "mtp": buckets["mtp"],
        "other": by_kind["other"],
        "outside_text": components,
    }
    paths = {
        "decoder": dec_path,
        "layers": layers_path,
        "embed_tokens": emb_path,
        "lm_head": out_path,
    }
    # The breakdown must add up to the total: this is what makes a mismatch debuggable.
    assert breakdown["embed_tokens"] + breakdown["lm_head"] + breakdown["final_norm"] + breakdown["layers"] + sum(
        breakdown["decoder_other"].values()
    ) == text, "text buckets do not add up"
    assert text + buckets["mtp"] + sum(by_kind.values()) == total, "buckets do not add up to the total"
    return breakdown, {"paths": paths, "decoder": decoder, "layers": layers}


# ---------------------------------------------------------------------------------------------
# Layers: mixer and cache
# ---------------------------------------------------------------------------------------------

MIXER_CHILD_RE = re.compile(
    r"attn|attention|mixer|mamba|ssm|conv|delta|linear_attn|rwkv|time_mix|retention|mlstm|slstm|lightning|token_mix"
    r"|temporal|recurrent",
    re.I,
)
NOT_MIXER_RE = re.compile(r"norm|mlp|ffn|feed_forward|moe|expert|channel_mix|dropout|rotary|layer_scale", re.I)


def count_params(mod: torch.nn.Module) -> int:
    return sum(p.numel() for p in mod.parameters())


def linears(mod: torch.nn.Module, depth: int = 2) -> dict[str, list[int]]:
    """in/out features of the Linear (and Conv1D-like) layers within `depth` levels of `mod`."""
    out = {}
    for name, sub in mod.named_modules():
        if not name or name.count(".") >= depth:
            continue
        if isinstance(sub, torch.nn.Linear):
            out[name] = [sub.in_features, sub.out_features]
        elif type(sub).__name__ == "Conv1D" and hasattr(sub, "nf"):  # GPT-2 style: weight (in, out)
            out[name] = [int(sub.weight.shape[0]), int(sub.nf)]
    return out


def find_mixers(layer: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The layer's token mixers: children whose name says attention / state-space / conv / ..."""
    found = []
    for name, child in layer.named_children():
        cls = type(child).__name__
        if "norm" in cls.lower() or "norm" in name.lower():
            continue
        if NOT_MIXER_RE.search(name) and not MIXER_CHILD_RE.search(cls):
            continue
        if MIXER_CHILD_RE.search(name) or MIXER_CHILD_RE.search(cls):
            if isinstance(child, torch.nn.ModuleList):
                found.extend((f"{name}.{i}", m) for i, m in enumerate(child))
            else:
                found.append((name, child))
    return found


def mixer_family(cls: str) -> str:
    c = cls.lower()
    for needle, fam in (
        ("mamba2", "mamba2"),
        ("mamba", "mamba"),
        ("gateddeltanet", "gated_deltanet"),
        ("deltanet", "deltanet"),
        ("kimidelta", "kimi_delta_attention"),
        ("deltaattention", "kimi_delta_attention"),
        ("lightning", "lightning_attention"),
        ("linearattention", "linear_attention"),
        ("rwkv", "rwkv"),
        ("xlstm", "xlstm"),
        ("mlstm", "xlstm"),
        ("shortconv", "short_conv"),
        ("conv", "conv"),
        ("mla", "mla"),
        ("attention", "attention"),
        ("attn", "attention"),
    ):
        if needle in c:
            return fam
    return "other"


ATTR_FIELDS = (
    "sliding_window",
    "attention_chunk_size",
    "is_sliding",
    "is_kv_shared_layer",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
    "head_dim",
    "num_heads",
    "num_key_value_heads",
    "layer_type",
)


def mixer_attrs(mod: torch.nn.Module) -> dict:
    out = {}
    for f in ATTR_FIELDS:
        v = getattr(mod, f, None)
        if isinstance(v, (bool, int, float, str)) and not isinstance(v, torch.Tensor):
            out[f] = v
    if hasattr(mod, "indexer"):
        out["has_indexer"] = True
    return out


def describe_tensor(name: str, shapes: list[tuple], dtype: torch.dtype) -> dict:
    """A cache tensor seen after forwards of SEQ_LENS tokens.

    kind "state": same shape after both forwards, a constant per-sequence state (`elems` elements);
    kind "kv": one dimension (`seq_dim`) grew by exactly the number of tokens added, so it holds
    `per_token` elements per token; kind "other": anything else (a compressed cache that adds one
    row per several tokens, or a shape change in several dimensions), with both shapes kept.
    """
    s0, s1 = shapes
    rec = {"name": name, "dtype": dtype_name(dtype), "shape": list(s1)}
    added = SEQ_LENS[1] - SEQ_LENS[0]
    if s0 == s1:
        rec.update(kind="state", elems=math.prod(s1))
        return rec
    diff = [i for i, (a, b) in enumerate(zip(s0, s1)) if a != b]
    if len(s0) == len(s1) and len(diff) == 1 and s1[diff[0]] - s0[diff[0]] == added:
        d = diff[0]
        rec.update(kind="kv", seq_dim=d, per_token=math.prod(s1) // s1[d])
        return rec
    rec.update(kind="other", shape_first=list(s0))
    return rec


def cache_tensors(obj, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor held by a cache layer object, by attribute path (dicts and lists walked)."""
    out = {}
    if depth > 3:
        return out
    items = []
    if isinstance(obj, dict):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__"):
        items = [(k, v) for k, v in vars(obj).items() if not k.startswith("__")]
    for k, v in items:
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, torch.Tensor):
            if v.dim() > 0 and k not in ("_sliding_window_tensor", "cumulative_length_tensor"):
                out[path] = v
        elif isinstance(v, (dict, list, tuple)) or (
            hasattr(v, "__dict__") and not isinstance(v, (torch.nn.Module, torch.device, torch.dtype, type))
        ):
            out.update(cache_tensors(v, path, depth + 1))
    return out


def cache_layers(cache) -> tuple[list[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    """Every tensor of whatever cache a model returned: per layer by attribute path, and the rest.

    A transformers `Cache` keeps one object per layer in `.layers`. Some model caches keep
    per-layer tensors in containers of their own, merged in by layer index: a list (MiniMax's
    `linear_cache` holds the lightning-attention state) or a dict keyed by layer index (xLSTM's
    `rnn_state`). Tensors that belong to no layer (a cache-wide counter, RWKV's state returned as
    a plain list with the layer as a dimension) come back apart, unattributed.
    """
    if isinstance(cache, (list, tuple)):
        return [], cache_tensors({"state": list(cache)})
    objs = []
    if isinstance(cache, Cache) or isinstance(getattr(cache, "layers", None), (list, tuple)):
        objs = list(cache.layers)
    per_layer: list[dict] = [cache_tensors(o) for o in objs]
    loose: dict[str, torch.Tensor] = {}
    for attr, v in vars(cache).items():
        if attr == "layers":
            continue
        items = None
        if isinstance(v, (list, tuple)) and v:
            items = list(enumerate(v))
        elif isinstance(v, dict) and v and all(isinstance(k, int) for k in v):
            items = sorted(v.items())
        if items is not None and any(cache_tensors({"x": item}) for _, item in items):
            for i, item in items:
                while len(per_layer) <= i:
                    per_layer.append({})
                for name, t in cache_tensors({attr: item}).items():
                    per_layer[i][name] = t
        elif isinstance(v, torch.Tensor) and v.dim() > 0:
            loose[attr] = v
    return per_layer, loose


def cache_layer_classes(cache) -> list[str]:
    if isinstance(cache, Cache) or isinstance(getattr(cache, "layers", None), (list, tuple)):
        return [type(o).__name__ for o in cache.layers]
    return []


def cache_layer_windows(cache) -> list:
    if isinstance(getattr(cache, "layers", None), (list, tuple)):
        return [getattr(o, "sliding_window", None) for o in cache.layers]
    return []


def module_states(layers: torch.nn.ModuleList | None) -> list[dict[str, torch.Tensor]]:
    """Tensors a layer's modules hold as plain attributes (not parameters or buffers) after a forward.

    A few models keep their recurrent state in the modules instead of a cache object
    (RecurrentGemma's `conv1d_state` and `rg_lru.recurrent_states`).
    """
    out = []
    for layer in layers if layers is not None else []:
        found = {}
        for path, mod in layer.named_modules():
            for k, v in vars(mod).items():
                if isinstance(v, torch.Tensor) and v.dim() > 0 and k not in ("_parameters", "_buffers"):
                    found[f"module:{path}.{k}" if path else f"module:{k}"] = v
        out.append(found)
    return out


@contextlib.contextmanager
def masks_bypassed(enabled: bool):
    """Mask builders that return None instead of raising.

    Mask construction asks data-dependent questions (`.all()`, `.item()`) that a meta tensor cannot
    answer, and one transformers release fails on a cache with no attention layer at all (Bamba's
    default config). The mask never changes a cache's shape, so the second attempt replaces every
    `create_*mask` function that the modeling modules imported with one that returns None on error.
    """
    if not enabled:
        yield
        return
    import transformers.masking_utils as mu

    def wrap(fn):
        def safe(*a, **k):
            try:
                return fn(*a, **k)
            except Exception:  # noqa: BLE001
                return None

        safe.__wrapped_oracle__ = fn
        return safe

    patched = []
    modules = [mu] + [m for n, m in list(sys.modules.items()) if n.startswith("transformers.models.") and m]
    for mod in modules:
        for name, fn in list(vars(mod).items()):
            if name.startswith("create_") and name.endswith("mask") and callable(fn) and not hasattr(fn, "__wrapped_oracle__"):
                patched.append((mod, name, fn))
                setattr(mod, name, wrap(fn))
    try:
        yield
    finally:
        for mod, name, fn in patched:
            setattr(mod, name, fn)


class NoCache(RuntimeError):
    """The forward ran but returned no cache object."""


def run_forward(module: torch.nn.Module, seq: int, text_config, explicit_cache: bool, with_mask: bool = False):
    device = next(iter(module.parameters()), torch.empty(0, device="meta")).device
    ids = torch.zeros((1, seq), dtype=torch.long, device=device)
    kwargs = {"input_ids": ids, "use_cache": True}
    if with_mask:
        # An all-ones attention mask, as a tokenizer returns for one unpadded prompt. Without one,
        # PreTrainedModel.warn_if_padding_and_no_attention_mask (modeling_utils.py) asks whether
        # the pad token is among the ids, a `.item()` a meta tensor cannot answer (BigBird,
        # MegatronBERT, RemBERT, RoFormer).
        kwargs["attention_mask"] = torch.ones((1, seq), dtype=torch.long, device=device)
    if explicit_cache:
        kwargs["past_key_values"] = DynamicCache(config=text_config)
    with torch.no_grad(), quiet():
        out = module(**kwargs)
    for attr in ("past_key_values", "cache_params", "cache", "state"):
        c = getattr(out, attr, None)
        if c is not None:
            return c, attr
    if explicit_cache:
        return kwargs["past_key_values"], "past_key_values (passed in)"
    raise NoCache("the forward returned no cache (no past_key_values / cache_params)")


# The forward attempts, in order: (name, module, masks bypassed, attention mask passed, device).
# The first that returns a cache wins and is recorded by name; one whose forward runs and returns
# no cache while no layer holds a state stops the search (NotADecoder), and causal_check then
# tells an encoder from a decoder whose class keeps no cache.
ATTEMPTS = (
    # the whole model, as a user would call it
    ("meta-forward", "model", False, False, "meta"),
    # the same with mask construction that cannot stop it (see masks_bypassed)
    ("meta-forward-masks-bypassed", "model", True, False, "meta"),
    # the text decoder alone: multimodal heads that insist on pixel_values, or whose text-only
    # path is broken in this release (Llama 4), still run their decoder
    ("meta-forward-decoder", "decoder", True, False, "meta"),
    # the whole model given an attention mask, as a tokenizer returns one (see run_forward)
    ("meta-forward-attention-mask", "model", True, True, "meta"),
    # the whole model built for real on the CPU (random weights), for a forward that asks its input a
    # data-dependent question no meta tensor can answer (XLM: `lengths.max().item()`); only for
    # models of at most CPU_FORWARD_MAX_PARAMS parameters, since this allocates their weights
    ("cpu-forward", "model", True, True, "cpu"),
)
# 1e9 parameters are 2 GB of bfloat16 weights: the largest a CPU forward may allocate here.
CPU_FORWARD_MAX_PARAMS = 1_000_000_000


def forward_caches(model: torch.nn.Module, decoder: torch.nn.Module, layers, text_config, build_cpu=None) -> dict:
    """Run the meta-device forwards and return per-layer tensor descriptions.

    `build_cpu` builds the same model on the CPU with real weights (for the cpu-forward attempt)
    and returns it with its layer list.
    """
    errors = []
    for name, which, bypass, with_mask, device in ATTEMPTS:
        target = model if which == "model" else decoder
        if which == "decoder" and decoder is model:
            continue
        if device == "cpu":
            n_params = sum(p.numel() for p in model.parameters())
            if build_cpu is None or not errors or not all("on meta tensors" in e for e in errors):
                continue  # the meta forwards failed for another reason: a CPU one would too
            if n_params > CPU_FORWARD_MAX_PARAMS:
                errors.append(f"{name}: not tried ({n_params} parameters > {CPU_FORWARD_MAX_PARAMS})")
                continue
            try:
                target, layers = build_cpu()
            except Exception as e:  # noqa: BLE001
                errors.append(f"{name}: {one_line(e)} [{where(e)}]")
                continue
        seen = []
        explicit = False
        try:
            with masks_bypassed(bypass):
                for seq in SEQ_LENS:
                    try:
                        cache, attr = run_forward(target, seq, text_config, explicit, with_mask)
                    except NoCache:
                        held = module_states(layers)
                        if not any(held):
                            raise NotADecoder(
                                "the forward with use_cache=True returned no cache and no layer holds a state: "
                                "not a cached decoder with its default config",
                                name,
                                errors,
                            ) from None
                        # a model that keeps its state in its modules (RecurrentGemma) and caches
                        # its attention layers only in a cache it is handed
                        explicit = True
                        cache, attr = run_forward(target, seq, text_config, True, with_mask)
                    seen.append((cache, attr, cache_layers(cache), module_states(layers)))
            if not any(t for t in seen[-1][2][0]) and not seen[-1][2][1] and not any(seen[-1][3]):
                raise RuntimeError(f"the forward returned a {type(seen[-1][0]).__name__} holding no tensor")
        except NotADecoder:
            raise
        except Exception as e:  # noqa: BLE001
            errors.append(f"{name}: {one_line(e)} [{where(e)}]")
            continue
        rec = describe_caches(seen)
        rec["method"] = name + ("-explicit-cache" if explicit else "")
        if errors:
            rec["earlier_attempts"] = errors
        return rec
    raise OracleForwardError(errors)


class NotADecoder(Exception):
    """The forward ran and kept nothing between calls: an encoder, or a decoder without a cache."""

    def __init__(self, message: str, attempt: str, errors: list[str]):
        super().__init__(message)
        self.attempt = attempt
        self.errors = list(errors)


class OracleForwardError(Exception):
    def __init__(self, errors: list[str]):
        super().__init__(errors[0] if errors else "no forward attempted")
        self.errors = errors


def describe_caches(seen: list) -> dict:
    (c0, attr, (l0, u0), m0), (c1, _, (l1, u1), m1) = seen
    classes, windows = cache_layer_classes(c1), cache_layer_windows(c1)
    unattributed = [describe_tensor(n, [tuple(u0[n].shape), tuple(t.shape)], t.dtype) for n, t in u1.items() if n in u0]
    n = max(len(l1), len(m1))
    layers = []
    for i in range(n):
        t0 = {**(l0[i] if i < len(l0) else {}), **(m0[i] if i < len(m0) else {})}
        t1 = {**(l1[i] if i < len(l1) else {}), **(m1[i] if i < len(m1) else {})}
        tensors = [
            describe_tensor(name, [tuple(t0[name].shape), tuple(t.shape)], t.dtype) for name, t in t1.items() if name in t0
        ]
        layers.append(
            {
                "class": classes[i] if i < len(classes) else None,
                "sliding_window": windows[i] if i < len(windows) else None,
                "tensors": tensors,
            }
        )
    out = {"class": type(c1).__name__, "output_field": attr, "layers": layers}
    if unattributed:
        out["unattributed_tensors"] = unattributed
    return out


def declared_cache(text_config) -> list[str] | None:
    """The cache layer classes DynamicCache(config=...) would create, without running anything."""
    try:
        layer_types, _ = get_layer_types_and_kwargs(text_config)
        return list(layer_types)
    except Exception:  # noqa: BLE001 - some configs have no per-layer description
        return None


def mixer_kind(mixer: dict, cache_layer: dict | None, layer_type: str | None, kv_mode) -> str:
    """One word for the layer's token mixer, from what transformers built and cached."""
    attrs = mixer.get("attrs", {}) if mixer else {}
    fam = mixer.get("family") if mixer else None
    if kv_mode == "reuse" or attrs.get("is_kv_shared_layer"):
        return "kv_shared"
    ccls = cache_layer["class"] if cache_layer else None
    kinds = {t["kind"] for t in cache_layer["tensors"]} if cache_layer is not None else set()
    has_kv = bool(kinds & {"kv", "other"})
    has_state = "state" in kinds
    if has_kv and has_state:
        return "hybrid"
    if has_state and not has_kv:
        return "state"
    if "kv_lora_rank" in attrs:
        return "mla"
    if layer_type == "chunked_attention" or (ccls and "Sliding" in ccls and attrs.get("attention_chunk_size")):
        return "chunked_attention"
    if (ccls and "Sliding" in ccls) or (layer_type or "").startswith("sliding") or attrs.get("sliding_window"):
        return "sliding_attention"
    if fam in ("attention", "mla") or has_kv:
        return "full_attention"
    if mixer is None:
        return "none"
    return fam or "other"


def describe_layers(model, info: dict, text_config, cache: dict | None) -> list:
    layers = info["layers"]
    if layers is None:
        return []
    layer_types = getattr(text_config, "layer_types", None)
    try:
        kv_modes = getattr(text_config, "kv_sharing_modes", None)
    except Exception:  # noqa: BLE001
        kv_modes = None
    out = []
    for i, layer in enumerate(layers):
        children = {name: [type(c).__name__, count_params(c)] for name, c in layer.named_children()}
        mixers = []
        for name, mod in find_mixers(layer):
            mixers.append(
                {
                    "path": name,
                    "class": type(mod).__name__,
                    "family": mixer_family(type(mod).__name__),
                    "attrs": mixer_attrs(mod),
                    "linears": linears(mod),
                }
            )
        cache_layer = None
        if cache is not None and i < len(cache["layers"]):
            cache_layer = cache["layers"][i]
        lt = layer_types[i] if isinstance(layer_types, (list, tuple)) and i < len(layer_types) else None
        mode = kv_modes[i] if isinstance(kv_modes, (list, tuple)) and i < len(kv_modes) else None
        rec = {
            "class": type(layer).__name__,
            "params": count_params(layer),
            "layer_type": lt,
            "kind": mixer_kind(mixers[0] if mixers else None, cache_layer, lt, mode),
            "mixers": mixers,
            "children": children,
        }
        if mode is not None:
            rec["kv_sharing_mode"] = mode
            if mode == "reuse" and lt is not None:
                # transformers' rule (Gemma3n/Gemma4 configs, `kv_sharing_modes`): a reusing layer
                # reads the KV stored by the last "store" layer of the same layer type
                src = [j for j, m in enumerate(kv_modes) if m == "store" and layer_types[j] == lt]
                rec["kv_shared_with"] = src[-1] if src else None
        if cache_layer is not None:
            rec["cache"] = cache_layer
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------------------
# One model type
# ---------------------------------------------------------------------------------------------


def auto_classes_for(model_type: str) -> dict[str, str]:
    return {k: v[0][model_type] for k, v in AUTO_CLASSES.items() if model_type in v[0]}


def describe_type(model_type: str, do_forward: bool = True) -> dict:
    classes = auto_classes_for(model_type)
    # image-text-to-text first: where a type is in both mappings, that class is the whole
    # checkpoint (vision tower included), which is what `params` must count
    auto_name = next(iter(classes))
    auto = AUTO_CLASSES[auto_name][1]
    rec: dict = {
        "schema": SCHEMA_VERSION,
        "model_type": model_type,
        "auto_class": auto_name,
        "auto_classes": classes,
        "architecture": classes[auto_name],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
    }
    t0 = time.time()
    try:
        with quiet():
            cfg = CONFIG_MAPPING[model_type]()
        rec["config"] = json.loads(cfg.to_json_string(use_diff=False))
    except Exception as e:  # noqa: BLE001
        rec.update(status="failed", stage="config", error=one_line(e), error_at=where(e))
        return rec
    rec["is_encoder_decoder"] = bool(getattr(cfg, "is_encoder_decoder", False))
    # "encoder-decoder" when the config says so (the causal-LM class is then its decoder stack);
    # turned into "encoder" below when the forward shows no cache at all
    rec["model_kind"] = "encoder-decoder" if rec["is_encoder_decoder"] else "decoder"
    try:
        with torch.device("meta"), quiet():
            model = auto.from_config(cfg, dtype=FORWARD_DTYPE)
    except Exception as e:  # noqa: BLE001
        rec.update(status="failed", stage="build", error=one_line(e), error_at=where(e))
        return rec
    rec["architecture"] = type(model).__name__
    rec["status"] = "built"
    rec["build_seconds"] = round(time.time() - t0, 2)
    try:
        text_config = model.config.get_text_config(decoder=True)
    except Exception:  # noqa: BLE001
        text_config = model.config
    rec["text_config_class"] = type(text_config).__name__

    try:
        breakdown, info = describe_params(model)
    except Exception as e:  # noqa: BLE001
        rec["params"] = {"total": sum(p.numel() for p in model.parameters()), "error": one_line(e)}
        rec["layers"] = []
        return rec
    rec["params"] = breakdown
    rec["module_paths"] = info["paths"]

    cache = None
    method = {"declared_layer_types": declared_cache(text_config)}
    if getattr(model, "set_default_language", None) and getattr(model.config, "default_language", 0) is None:
        # A model with per-language adapters (X-MOD) refuses a forward until a language is
        # chosen, through transformers' own set_default_language; the first of the config's
        # `languages` (the adapters it builds) is taken, which changes no shape.
        langs = list(getattr(model.config, "languages", None) or [])
        if langs:
            model.set_default_language(langs[0])
            method["default_language"] = langs[0]
    if do_forward:
        try:
            def build_cpu():
                # the same default config, built for real (random weights, the forward dtype)
                torch.manual_seed(0)
                with torch.device("cpu"), quiet():
                    m = auto.from_config(cfg, dtype=FORWARD_DTYPE)
                m.eval()
                path = info["paths"]["layers"]
                return m, (m.get_submodule(path) if path else None)

            cache = forward_caches(model, info["decoder"], info["layers"], text_config, build_cpu)
            method.update(
                method=cache["method"],
                seq_lens=list(SEQ_LENS),
                batch=1,
                model_dtype=dtype_name(FORWARD_DTYPE),
                cache_class=cache["class"],
                output_field=cache["output_field"],
                cache_layers=len(cache["layers"]),
            )
            if cache.get("earlier_attempts"):
                method["earlier_attempts"] = cache["earlier_attempts"]
            if cache.get("unattributed_tensors"):
                method["unattributed_tensors"] = cache["unattributed_tensors"]
        except OracleForwardError as e:
            method.update(method="none", error=str(e), attempts=e.errors)
        except NotADecoder as e:
            method.update(method="none", error=str(e), observed_by=e.attempt)
            if e.errors:
                method["earlier_attempts"] = e.errors
            # No cache: an encoder, or a causal decoder whose transformers class keeps no cache
            # (OpenAI GPT). What tells them apart is whether attention looks ahead.
            if not rec["is_encoder_decoder"]:
                rec["causal_check"] = causal_check(auto, cfg)
            causal = rec.get("causal_check", {}).get("causal")
            rec["model_kind"] = "decoder" if causal else "encoder"
    rec["cache_method"] = method
    layers = describe_layers(model, info, text_config, cache)
    if cache is not None and info["layers"] is not None and len(cache["layers"]) != len(info["layers"]):
        method["note"] = (
            f"the cache has {len(cache['layers'])} layers and the decoder {len(info['layers'])}: "
            "per-layer cache records follow the cache's own order"
        )
    rec["layers"] = rle(layers, key=lambda r: r)
    rec["num_layers"] = len(layers)
    rec["summary"] = summarize(layers, cache)
    rec["seconds"] = round(time.time() - t0, 2)
    del model
    gc.collect()
    return rec


# A causal check builds the model for real, in float32 on the CPU (4 bytes a parameter).
CAUSAL_CHECK_MAX_PARAMS = 1_000_000_000
CAUSAL_CHECK_LEN = 8


def causal_check(auto, cfg) -> dict:
    """Whether the model's outputs at a position depend on later tokens.

    Two prompts that differ only in their last token go through the model (randomly initialised
    from the default config, float32, CPU, eval mode, an all-ones attention mask). A decoder's
    outputs at every earlier position are then bit for bit the same (those positions' attention
    never reads the last token, so every operation on them is the same); an encoder's differ
    everywhere. `causal` is null when the check could not run.
    """
    out: dict = {"prompt_tokens": CAUSAL_CHECK_LEN, "dtype": "float32", "device": "cpu"}
    try:
        with torch.device("meta"), quiet():
            n = sum(p.numel() for p in auto.from_config(cfg).parameters())
        if n > CAUSAL_CHECK_MAX_PARAMS:
            out.update(causal=None, error=f"not run: {n} parameters > {CAUSAL_CHECK_MAX_PARAMS}")
            return out
        torch.manual_seed(0)
        with torch.device("cpu"), quiet():
            model = auto.from_config(cfg, dtype=torch.float32)
        model.eval()
        vocab = model.get_input_embeddings().num_embeddings
        # token ids away from the special ones at the start of the vocabulary
        a = torch.arange(10, 10 + CAUSAL_CHECK_LEN, dtype=torch.long).remainder(vocab).unsqueeze(0)
        b = a.clone()
        b[0, -1] = (a[0, -1] + 7) % vocab
        mask = torch.ones_like(a)
        with torch.no_grad(), quiet():
            la = model(input_ids=a, attention_mask=mask).logits
            lb = model(input_ids=b, attention_mask=mask).logits
        diff = (la[:, :-1] - lb[:, :-1]).abs().max().item()
        out.update(causal=bool(torch.equal(la[:, :-1], lb[:, :-1])), max_abs_diff_before_last=diff)
        del model
    except Exception as e:  # noqa: BLE001
        out.update(causal=None, error=f"{one_line(e)} [{where(e)}]")
    gc.collect()
    return out


def summarize(layers: list, cache: dict | None) -> dict:
    kinds: dict[str, int] = {}
    for r in layers:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    out = {"layer_kinds": kinds}
    if cache is None:
        return out
    per_token = 0
    state_elems = 0
    state_bytes = 0
    other = []
    groups = [(str(i), cl["tensors"]) for i, cl in enumerate(cache["layers"])]
    groups.append(("unattributed", cache.get("unattributed_tensors", [])))
    for i, tensors in groups:
        for t in tensors:
            if t["kind"] == "kv":
                per_token += t["per_token"]
            elif t["kind"] == "state":
                state_elems += t["elems"]
                state_bytes += t["elems"] * torch.empty((), dtype=getattr(torch, t["dtype"])).element_size()
            else:
                other.append(f"{i}:{t['name']}")
    out["kv_elems_per_token"] = per_token
    out["state_elems"] = state_elems
    out["state_bytes"] = state_bytes
    if other:
        out["other_tensors"] = other
    return out


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def index_line(rec: dict) -> dict:
    line = {
        "model_type": rec["model_type"],
        "status": rec.get("status"),
        "auto_class": rec.get("auto_class"),
        "architecture": rec.get("architecture"),
    }
    if rec.get("status") == "built":
        p = rec.get("params", {})
        line.update(params_total=p.get("total"), params_text=p.get("text"))
        s = rec.get("summary", {})
        line.update(
            layers=rec.get("num_layers"),
            cache_method=rec.get("cache_method", {}).get("method"),
            kv_elems_per_token=s.get("kv_elems_per_token"),
            state_bytes=s.get("state_bytes"),
        )
        if rec.get("cache_method", {}).get("error"):
            line["cache_error"] = rec["cache_method"]["error"]
    else:
        line.update(stage=rec.get("stage"), error=rec.get("error"))
    return line


def write_index(out_dir: Path, lines: list[dict], meta: dict) -> None:
    body = ",\n".join("    " + json.dumps(line, separators=(", ", ": ")) for line in lines)
    head = json.dumps(meta, indent=2)[:-2]  # reopen the object to append the types
    (out_dir / "index.json").write_text(f'{head},\n  "types": [\n{body}\n  ]\n}}\n')


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="output folder (default data/oracle/transformers-<version>)")
    ap.add_argument("--only", nargs="*", help="model types to do (default: all)")
    ap.add_argument("--no-forward", action="store_true", help="skip the meta-device forward (no cache shapes)")
    args = ap.parse_args()

    repo = Path(__file__).resolve().parents[2]
    out_dir = Path(args.out) if args.out else repo / "data" / "oracle" / f"transformers-{transformers.__version__}"
    out_dir.mkdir(parents=True, exist_ok=True)
    types = sorted(set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) | set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES))
    if args.only:
        types = [t for t in types if t in set(args.only)]
    started = time.time()
    run_seconds = None
    lines = []
    for mt in types:
        t = time.time()
        try:
            rec = describe_type(mt, do_forward=not args.no_forward)
        except Exception as e:  # noqa: BLE001 - one type must never stop the run
            rec = {"schema": SCHEMA_VERSION, "model_type": mt, "status": "failed", "stage": "oracle",
                   "error": one_line(e), "error_at": where(e)}
        (out_dir / f"{mt}.json").write_text(json.dumps(rec, separators=(",", ":"), sort_keys=False) + "\n")
        line = index_line(rec)
        lines.append(line)
        print(f"{time.time() - t:6.1f}s {mt}: {json.dumps(line)}", flush=True)
        gc.collect()

    if args.only:
        # a partial run refreshes its own files and their index lines only
        idx = out_dir / "index.json"
        if idx.exists():
            prev = json.loads(idx.read_text())
            old = {line["model_type"]: line for line in prev["types"]}
            run_seconds = prev.get("run_seconds")  # the last full run's
            old.update({line["model_type"]: line for line in lines})
            lines = [old[k] for k in sorted(old)]
    counts = {}
    for line in lines:
        counts[line["status"]] = counts.get(line["status"], 0) + 1
    meta = {
        "schema": SCHEMA_VERSION,
        "generated_by": "scripts/oracle/oracle.py",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "python_version": platform.python_version(),
        "mappings": ["MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"],
        "forward": {"device": "meta", "batch": 1, "seq_lens": list(SEQ_LENS), "model_dtype": dtype_name(FORWARD_DTYPE)},
        "counts": counts,
    }
    if not args.only:
        run_seconds = round(time.time() - started, 1)
    if run_seconds is not None:
        meta["run_seconds"] = run_seconds
    write_index(out_dir, lines, meta)
    print(f"done: {counts} in {time.time() - started:.0f}s -> {out_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
