//! A GGUF header's metadata → the config.json it stands for, so that GGUF files are described by
//! the same mapping as every other source. The key table is data with its sources
//! (`data/gguf/keys.toml`: transformers' own GGUF integration and llama.cpp's gguf-py); what a
//! table cannot say is here: per-layer KV head counts with zeros (llama.cpp's marker of recurrent
//! layers in hybrid models) and the sliding-window pattern become `layer_types`, latent-attention
//! lengths become DeepSeek's fields, the absence of `output.weight` means tied embeddings.

use super::ArchError;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

const FILE: &str = include_str!("../../data/gguf/keys.toml");

#[derive(Deserialize)]
struct Table {
    keys: HashMap<String, String>,
    architectures: HashMap<String, String>,
    /// llama.cpp's loader defaults by GGUF architecture (keys.toml `[loader.<arch>]`).
    #[serde(default)]
    loader: HashMap<String, LoaderDefaults>,
}

/// What llama.cpp's loader assumes for keys a GGUF leaves out (data/gguf/keys.toml, with the
/// llama.cpp source of each).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LoaderDefaults {
    sliding_window: Option<u64>,
    swa_period: Option<u64>,
    chunk: Option<u64>,
    chunk_period: Option<u64>,
    #[serde(default)]
    ignore_sliding_window: bool,
    kv_layers_from_start: Option<u64>,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    // Compiled in and checked by the tests: a failure here is a build defect.
    T.get_or_init(|| toml::from_str(FILE).expect("data/gguf/keys.toml parses"))
}

/// The transformers model_type of a GGUF `general.architecture`.
pub fn model_type_of(arch: &str) -> String {
    table()
        .architectures
        .get(arch)
        .cloned()
        .unwrap_or_else(|| arch.replace('-', "_"))
}

/// The GGUF key a config.json field was translated from (for errors that name the file's own
/// key), if any.
pub fn gguf_key_of(arch: &str, field: &str) -> Option<String> {
    let suffix = table()
        .keys
        .iter()
        .filter(|(_, v)| v.as_str() == field)
        .map(|(k, _)| k.as_str())
        .min()?;
    Some(format!("{arch}.{suffix}"))
}

fn get_key<'m>(meta: &'m BTreeMap<String, Value>, arch: &str, suffix: &str) -> Option<&'m Value> {
    meta.get(&format!("{arch}.{suffix}"))
}

/// The config.json a GGUF header stands for. `meta` holds the header's keys as JSON values
/// (arrays whole; the caller leaves out arrays it did not keep, and gives the vocabulary size
/// as `tokenizer.ggml.tokens` = its entry count); `has_output_weight` says whether any tensor is
/// `output.weight` (`None`: the file lists no tensors).
pub fn config_from_gguf(
    meta: &BTreeMap<String, Value>,
    has_output_weight: Option<bool>,
) -> Result<Value, ArchError> {
    let arch = meta
        .get("general.architecture")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ArchError::field(
                "general.architecture",
                "the GGUF header has no general.architecture key",
            )
        })?;
    let model_type = model_type_of(arch);
    let mut c = Map::new();
    c.insert("model_type".into(), Value::String(model_type.clone()));
    let t = table();
    let prefix = format!("{arch}.");
    for (key, value) in meta.range(prefix.clone()..) {
        let Some(suffix) = key.strip_prefix(&prefix) else {
            break;
        };
        if let Some(name) = t.keys.get(suffix) {
            c.insert(name.clone(), value.clone());
        }
    }
    if !c.contains_key("vocab_size") {
        if let Some(n) = meta.get("tokenizer.ggml.tokens") {
            c.insert("vocab_size".into(), n.clone());
        }
    }
    // No expert_count: llama.cpp's n_expert stays 0, a dense model (a class default of
    // transformers — GraniteMoeHybrid's 8 local experts — must not make it routed).
    if get_key(meta, arch, "expert_count").is_none() {
        c.insert("num_local_experts".into(), Value::from(0u64));
        c.insert("num_experts".into(), Value::from(0u64));
    }
    if let Some(has) = has_output_weight {
        c.insert("tie_word_embeddings".into(), Value::Bool(!has));
    }
    let get = |suffix: &str| meta.get(&format!("{arch}.{suffix}"));
    let block_count = get("block_count").and_then(Value::as_u64).unwrap_or(0);
    // Checked before anything below is allocated per layer (limits.rs).
    let key = format!("{arch}.block_count");
    crate::limits::check(&key, block_count, crate::limits::MAX_LAYERS)
        .map_err(|e| ArchError::field(&key, e))?;
    let n_layers = block_count as usize;

    // Per-layer feed-forward widths (Nemotron-H writes 0 for its Mamba and attention layers):
    // the config's one intermediate_size is the width of the layers that have one.
    let ff_widths: Option<Vec<u64>> = match get("feed_forward_length") {
        Some(Value::Array(ff)) => {
            let widths: Vec<u64> = ff.iter().filter_map(Value::as_u64).collect();
            let max = widths.iter().copied().max().unwrap_or(0);
            c.insert("intermediate_size".into(), Value::from(max));
            Some(widths)
        }
        _ => None,
    };
    // Per-layer KV heads: zeros mark recurrent layers (llama.cpp llama-model.cpp: hparams
    // n_head_kv_arr, `is_recurrent(il)` for Jamba, Granite hybrid, Nemotron-H, LFM2...). A layer
    // with no KV heads but a feed-forward width is an MLP-only layer (Nemotron-H:
    // src/models/nemotron-h.cpp, "a layer is recurrent IFF the n_head_kv value is set to 0 and
    // the n_ff value is set to 0").
    if let Some(Value::Array(kv)) = get("attention.head_count_kv") {
        let counts: Vec<u64> = kv.iter().filter_map(Value::as_u64).collect();
        if counts.contains(&0) {
            let recurrent = if model_type == "lfm2" {
                "conv"
            } else {
                "linear_attention"
            };
            let types: Vec<Value> = counts
                .iter()
                .enumerate()
                .map(|(il, &k)| {
                    let ff = ff_widths
                        .as_ref()
                        .and_then(|w| w.get(il))
                        .copied()
                        .unwrap_or(0);
                    Value::String(
                        match (k, ff) {
                            (0, 0) => recurrent,
                            (0, _) if ff_widths.is_some() => "mlp",
                            (0, _) => recurrent,
                            _ => "full_attention",
                        }
                        .into(),
                    )
                })
                .collect();
            c.insert("layer_types".into(), Value::Array(types));
            let max = counts.iter().copied().max().unwrap_or(0);
            c.insert("num_key_value_heads".into(), Value::from(max));
        }
    }
    // Sliding-window pattern: a period, or one bool per layer (true = sliding).
    match get("attention.sliding_window_pattern") {
        Some(Value::Array(flags)) if flags.len() >= n_layers => {
            let types: Vec<Value> = flags
                .iter()
                .map(|f| {
                    Value::String(
                        if f.as_bool() == Some(true) {
                            "sliding_attention"
                        } else {
                            "full_attention"
                        }
                        .into(),
                    )
                })
                .collect();
            c.insert("layer_types".into(), Value::Array(types));
        }
        Some(v @ Value::Number(_)) => {
            c.insert("sliding_window_pattern".into(), v.clone());
        }
        _ => {}
    }
    apply_loader_defaults(arch, n_layers, &mut c);
    // Latent attention: the rope part is rope.dimension_count; key_length_mla / value_length_mla
    // (or key_length / value_length in older files) are the per-head widths before absorption.
    if c.get("kv_lora_rank")
        .and_then(Value::as_u64)
        .is_some_and(|r| r > 0)
    {
        let rope = get("rope.dimension_count").and_then(Value::as_u64);
        let key = get("attention.key_length_mla")
            .or(get("attention.key_length"))
            .and_then(Value::as_u64);
        let value = get("attention.value_length_mla")
            .or(get("attention.value_length"))
            .and_then(Value::as_u64);
        if let Some(r) = rope {
            c.insert("qk_rope_head_dim".into(), Value::from(r));
            if let Some(k) = key {
                c.insert("qk_nope_head_dim".into(), Value::from(k.saturating_sub(r)));
            }
        }
        if let Some(v) = value {
            c.insert("v_head_dim".into(), Value::from(v));
        }
        c.remove("head_dim");
    }
    // LFM2: the converter writes the feed-forward width after block_auto_adjust_ff_dim
    // (conversion/lfm2.py `_add_feed_forward_length`); it must not be adjusted again.
    if model_type == "lfm2" {
        c.insert("block_auto_adjust_ff_dim".into(), Value::Bool(false));
    }
    // Gated DeltaNet (Qwen3-Next, Qwen3.5): llama.cpp's converter writes conv_kernel =
    // linear_conv_kernel_dim, state_size = linear_key_head_dim, group_count =
    // linear_num_key_heads, time_step_rank = linear_num_value_heads and inner_size =
    // linear_value_head_dim × linear_num_value_heads (conversion/qwen.py, Qwen3NextModel).
    if model_type.starts_with("qwen3_next") || model_type.starts_with("qwen3_5") {
        let num = |suffix: &str| get(suffix).and_then(Value::as_u64);
        if let (Some(k), Some(n), Some(g), Some(r), Some(inner)) = (
            num("ssm.conv_kernel"),
            num("ssm.state_size"),
            num("ssm.group_count"),
            num("ssm.time_step_rank"),
            num("ssm.inner_size"),
        ) {
            for key in [
                "conv_kernel",
                "state_size",
                "n_groups",
                "time_step_rank",
                "intermediate_size_ssm",
            ] {
                c.remove(key);
            }
            c.insert("linear_conv_kernel_dim".into(), Value::from(k));
            c.insert("linear_key_head_dim".into(), Value::from(n));
            c.insert("linear_num_key_heads".into(), Value::from(g));
            c.insert("linear_num_value_heads".into(), Value::from(r));
            c.insert(
                "linear_value_head_dim".into(),
                Value::from(inner.checked_div(r).unwrap_or(0)),
            );
        }
    }
    // SSM widths: Mamba's inner size is intermediate_size; Jamba and the Mamba-2 mixers (Granite
    // hybrid, Nemotron-H, Falcon-H1) take theirs as d_ssm, the Mamba-2 ones their head count from
    // time_step_rank.
    if let Some(inner) = c.remove("intermediate_size_ssm") {
        if model_type == "mamba" {
            c.insert("intermediate_size".into(), inner);
        } else {
            c.insert("mamba_d_ssm".into(), inner);
            if let Some(r) = get("ssm.time_step_rank") {
                c.insert("mamba_n_heads".into(), r.clone());
            }
        }
    }
    Ok(Value::Object(c))
}

/// llama.cpp's loader defaults for `arch` (keys.toml `[loader.<arch>]`), written into the config
/// as explicit `layer_types` and window keys, so that the description is the model llama.cpp
/// loads. A per-layer pattern the file gives is kept; a period it gives replaces the default.
fn apply_loader_defaults(arch: &str, n_layers: usize, c: &mut Map<String, Value>) {
    let Some(d) = table().loader.get(arch) else {
        return;
    };
    if d.ignore_sliding_window {
        c.remove("sliding_window");
    }
    if let Some(w) = d.sliding_window {
        c.entry("sliding_window").or_insert(Value::from(w));
    }
    let window = c.get("sliding_window").and_then(Value::as_u64);
    let explicit = c.contains_key("layer_types");
    let given_period = c.get("sliding_window_pattern").and_then(Value::as_u64);
    let types = |period: u64, local: &str| -> Value {
        let n = period.max(1);
        Value::Array(
            (0..n_layers as u64)
                .map(|il| {
                    Value::String(
                        if il % n < n - 1 {
                            local
                        } else {
                            "full_attention"
                        }
                        .into(),
                    )
                })
                .collect(),
        )
    };
    // Without a window the loader leaves every layer global (a class default of transformers
    // must not bring one back).
    let all_full = || Value::Array(vec![Value::String("full_attention".into()); n_layers]);
    if let Some(period) = d.swa_period {
        if !explicit {
            c.remove("sliding_window_pattern");
            let t = if window.is_some_and(|w| w > 0) {
                types(given_period.unwrap_or(period), "sliding_attention")
            } else {
                all_full()
            };
            c.insert("layer_types".into(), t);
        }
    }
    if let (Some(chunk), Some(period)) = (d.chunk, d.chunk_period) {
        if !explicit {
            c.remove("sliding_window_pattern");
            let t = if window == Some(0) {
                all_full()
            } else {
                types(given_period.unwrap_or(period), "chunked_attention")
            };
            c.insert("layer_types".into(), t);
        }
        if window != Some(0) {
            c.insert("attention_chunk_size".into(), Value::from(chunk));
        }
    }
    if let Some(own) = d.kv_layers_from_start {
        let n = n_layers as u64;
        c.insert("num_kv_shared_layers".into(), Value::from(n - own.min(n)));
    }
}
