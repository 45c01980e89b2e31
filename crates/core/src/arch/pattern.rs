//! Which mixer and which feed-forward block each decoder layer has, from whatever the config
//! uses to say it: `layer_types` / `layers_block_type` lists, Nemotron-H's
//! `hybrid_override_pattern`, Jamba's `attn_layer_period`/`offset`, attention index lists,
//! Qwen3-Next's `full_attention_interval`, Gemma's `sliding_window_pattern`, and the family's
//! own derivation when the file has none (the `__post_init__` of its configuration class in
//! transformers 5.24.0); the MoE schedule from `mlp_layer_types`, `first_k_dense_replace`,
//! `mlp_only_layers`, `decoder_sparse_step`, `moe_layer_freq`, `interleave_moe_layer_step`,
//! `moe_layers`, `expert_layer_period`/`offset`; KV sharing from `num_kv_shared_layers`
//! (Gemma 3n/4: the last N layers read the cache of the last earlier layer of their type).

use super::family::PatternRule;
use super::layers::{moe_fields, FfnPlan, Mixer, Plan};
use super::recurrent::RecKind;
use super::{ArchError, Basics, Builder};
use crate::layer::Span;

/// Layer-type names as configs write them, and what they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Full,
    Sliding,
    Chunked,
    /// Every prompt token and a window of generated ones (Unlimited-OCR).
    PrefillSliding,
    /// DeepSeek-V4's compressed attention, sparse (with an indexer) or heavily compressed.
    Compressed(bool),
    Indexed,
    Linear,
    Conv,
    /// No mixer: an MLP or MoE block alone (Nemotron-H "-" and "E" layers).
    FfnOnly(Option<bool>),
    Hybrid,
    HybridSliding,
}

fn kind_of(name: &str) -> Option<Kind> {
    Some(match name.to_ascii_lowercase().as_str() {
        "full_attention" | "attention" | "global" | "full" | "global_attention" | "*" => Kind::Full,
        "sliding_attention" | "sliding" | "local" | "local_attention" | "sliding_window" => {
            Kind::Sliding
        }
        "chunked_attention" => Kind::Chunked,
        "reference_sliding_attention" => Kind::PrefillSliding,
        "heavily_compressed_attention" => Kind::Compressed(false),
        "compressed_sparse_attention" => Kind::Compressed(true),
        "indexed_attention"
        | "deepseek_sparse_attention"
        | "qwen_sparse_attention"
        | "minimax_m3_sparse" => Kind::Indexed,
        "linear_attention" | "mamba" | "mamba2" | "m" | "linear" | "ssm" | "recurrent" => {
            Kind::Linear
        }
        "conv" => Kind::Conv,
        "moe" | "e" => Kind::FfnOnly(Some(true)),
        "mlp" | "-" => Kind::FfnOnly(Some(false)),
        "hybrid" => Kind::Hybrid,
        "hybrid_sliding" => Kind::HybridSliding,
        _ => return None,
    })
}

/// The decoder layers' plans, in order.
pub(crate) fn plans(
    b: &Builder,
    basics: &Basics,
    warnings: &mut Vec<String>,
) -> Result<Vec<Plan>, ArchError> {
    let n = basics.layers as usize;
    let t = b.text;
    if moe_fields(b, basics)?.is_some() && !t.has(super::layers::TOP_K_NAMES) {
        warnings.push(
            "num_experts_per_tok is missing or null: active parameters and activations are counted with 1 expert per token (the weights do not depend on it)".into(),
        );
    }
    let kinds = kinds(b, basics)?;
    let window = t.u64(&[
        "sliding_window",
        "sliding_window_size",
        "attention_window_size",
    ])?;
    let chunk = t.u64(&["attention_chunk_size"])?;
    let linear = RecKind::of_family(b)?;
    let window_span = |field: &str| -> Result<Span, ArchError> {
        match window {
            Some(w) if w > 0 => Ok(Span::Window(w)),
            _ => Err(ArchError::field(
                &t.field("sliding_window"),
                format!("{field} has sliding-window layers but sliding_window is missing or 0"),
            )),
        }
    };
    let linear_kind = |field: &str| -> Result<RecKind, ArchError> {
        linear.ok_or_else(|| {
            ArchError::field(
                field,
                format!(
                    "{field} has linear-attention layers but vramplan does not know which recurrent mixer '{}' uses",
                    b.model_type
                ),
            )
        })
    };
    let field = t.field("layer_types");
    let mut mixers = Vec::with_capacity(n);
    for k in &kinds {
        mixers.push(match k {
            // RecurrentGemma: every attention block is local (attention_window_size).
            Kind::Full if b.fam.local_attention == Some(true) => Mixer::Attention {
                span: window_span(&field)?,
                indexed: false,
                source: None,
            },
            Kind::Full => Mixer::Attention {
                span: Span::Full,
                indexed: false,
                source: None,
            },
            Kind::Sliding => Mixer::Attention {
                span: window_span(&field)?,
                indexed: false,
                source: None,
            },
            Kind::Chunked => Mixer::Attention {
                span: match chunk {
                    Some(c) if c > 0 => Span::Chunk(c),
                    _ => window_span(&field)?,
                },
                indexed: false,
                source: None,
            },
            Kind::Indexed => Mixer::Attention {
                span: Span::Full,
                indexed: true,
                source: None,
            },
            Kind::Compressed(sparse) => Mixer::Hybrid(
                RecKind::Compressor { sparse: *sparse },
                window_span(&field)?,
            ),
            Kind::PrefillSliding => Mixer::Attention {
                span: match window_span(&field)? {
                    Span::Window(w) => Span::PrefillWindow(w),
                    other => other,
                },
                indexed: false,
                source: None,
            },
            Kind::Linear => Mixer::Recurrent(linear_kind(&field)?),
            Kind::Conv => Mixer::Recurrent(RecKind::ShortConv),
            Kind::FfnOnly(_) => Mixer::None,
            Kind::Hybrid => Mixer::Hybrid(linear_kind(&field)?, Span::Full),
            Kind::HybridSliding => Mixer::Hybrid(linear_kind(&field)?, window_span(&field)?),
        });
    }
    kv_sharing(b, &kinds, &mut mixers)?;
    shared_indexers(b, &mut mixers)?;
    let cross = cross_layers(b, n)?;
    if b.fam.cross_replaces_attention == Some(true) {
        for (m, &c) in mixers.iter_mut().zip(&cross) {
            if c {
                *m = Mixer::None;
            }
        }
    }
    let ffns = ffns(b, basics, &kinds)?;
    let overrides = per_layer_overrides(b, n)?;
    // Per-layer rotary flags (1: rotary positions) for the families that have them.
    let rope_flags = match &b.fam.rope_flags_key {
        Some(k) => t.u64s(&[k.as_str()])?.map(|(_, f)| f),
        None => None,
    };
    let mut out = Vec::with_capacity(n.max(kinds.len()));
    for (i, (mixer, mut ffn)) in mixers.into_iter().zip(ffns).enumerate() {
        let o = overrides.get(i).cloned().unwrap_or_default();
        if let (FfnPlan::Dense(_), Some(w)) = (ffn, o.intermediate) {
            ffn = FfnPlan::Dense(w);
        }
        let head_dim = o.head_dim.unwrap_or(basics.head_dim);
        out.push(Plan {
            mixer,
            ffn,
            heads: o.heads.unwrap_or(basics.heads.get(i)),
            kv_heads: o.kv_heads.unwrap_or(basics.kv_heads.get(i))
                * match mixer {
                    Mixer::Attention {
                        span: Span::Window(_),
                        ..
                    } => b.fam.sliding_kv_factor.unwrap_or(1),
                    _ => 1,
                },
            head_dim,
            v_head_dim: if o.head_dim.is_some() {
                head_dim
            } else {
                basics.v_head_dim
            },
            cross: cross.get(i).copied().unwrap_or(false),
            weights_from: None,
            kv_lora_rank: o.kv_lora_rank,
            qk_nope_head_dim: o.qk_nope_head_dim,
            no_rope: rope_flags.as_ref().is_some_and(|f| f.get(i) == Some(&0)),
            block_from: None,
            first_layer: i == 0
                && (b.fam.hybrid_block.as_deref() == Some("inkling2")
                    || b.fam.first_layer_differs == Some(true)),
            in_loop: false,
        });
    }
    if b.fam.shared_block.is_some() {
        super::shared::assign_blocks(b, &mut out)?;
    }
    super::reuse::expand(b, out)
}

/// HY-V4's `indexer_types`: a "shared" layer reuses the previous "full" layer's top-k selection
/// and has no indexer of its own, neither weights nor indexer keys in the cache
/// (modeling_hy_v4.py HYV4Attention `skip_topk`).
fn shared_indexers(b: &Builder, mixers: &mut [Mixer]) -> Result<(), ArchError> {
    let Some((field, types)) = b.text.strings(&["indexer_types"])? else {
        return Ok(());
    };
    for (i, m) in mixers.iter_mut().enumerate() {
        match types.get(i).map(String::as_str) {
            Some("shared") => {
                if let Mixer::Attention { indexed, .. } = m {
                    *indexed = false;
                }
            }
            Some("full") | None => {}
            Some(other) => {
                return Err(ArchError::field(
                    &field,
                    format!(
                        "{field}[{i}] = \"{}\" is neither \"full\" nor \"shared\"",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Which layers have cross-attention to the vision encoder: those the family's list key names
/// (Mllama `cross_attention_layers`), every n-th from its interval key (IDEFICS
/// `cross_layer_interval`, modeling_idefics.py: `idx % cross_layer_interval == 0`), or every
/// layer (BLIP's text decoder).
fn cross_layers(b: &Builder, n: usize) -> Result<Vec<bool>, ArchError> {
    let t = b.text;
    let mut out = vec![false; n];
    if let Some(key) = &b.fam.cross_layers_key {
        if let Some((field, list)) = t.u64s(&[key.as_str()])? {
            for i in list {
                let Some(slot) = out.get_mut(i as usize) else {
                    return Err(ArchError::field(
                        &field,
                        format!("{field} names layer {i} of a {n}-layer model"),
                    ));
                };
                *slot = true;
            }
        }
    }
    if b.fam.cross_all == Some(true) {
        out.fill(true);
    }
    if let Some(key) = &b.fam.cross_interval_key {
        let every = t.u64_or(&[key.as_str()], 1)?.max(1) as usize;
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = i % every == 0;
        }
    }
    Ok(out)
}

/// One layer's own values from `per_layer_config` (transformers' HeterogeneousConfigMixin:
/// `{"05": {"head_dim": 512}}`, Gemma 4's global layers).
#[derive(Debug, Clone, Default)]
struct Overrides {
    head_dim: Option<u64>,
    heads: Option<u64>,
    kv_heads: Option<u64>,
    intermediate: Option<u64>,
    kv_lora_rank: Option<u64>,
    qk_nope_head_dim: Option<u64>,
}

fn per_layer_overrides(b: &Builder, n: usize) -> Result<Vec<Overrides>, ArchError> {
    let Some(obj) = b.text.object("per_layer_config")? else {
        return Ok(Vec::new());
    };
    let field = b.text.field("per_layer_config");
    let mut out = vec![Overrides::default(); n];
    for (key, v) in obj {
        let i: usize = key.trim().parse().map_err(|_| {
            ArchError::field(
                &field,
                format!("{field} has the key \"{key}\", not a layer index"),
            )
        })?;
        let Some(o) = out.get_mut(i) else {
            return Err(ArchError::field(
                &field,
                format!("{field} names layer {i} of a {n}-layer model"),
            ));
        };
        let serde_json::Value::Object(m) = v else {
            return Err(ArchError::field(
                &field,
                format!("{field}.{key} is not an object"),
            ));
        };
        for (k, val) in m {
            let num = super::fields::as_u64(val).ok_or_else(|| {
                ArchError::field(
                    &field,
                    format!("{field}.{key}.{k} is not a non-negative integer"),
                )
            })?;
            match k.as_str() {
                "head_dim" => o.head_dim = Some(num),
                "num_attention_heads" => o.heads = Some(num),
                "num_key_value_heads" => o.kv_heads = Some(num),
                "intermediate_size" => o.intermediate = Some(num),
                "kv_lora_rank" => o.kv_lora_rank = Some(num),
                "qk_nope_head_dim" => o.qk_nope_head_dim = Some(num),
                other => {
                    return Err(ArchError::field(
                        &field,
                        format!("{field}.{key}.{other} is a per-layer setting vramplan does not know; it cannot size this model"),
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// Layer kinds from the first pattern source the config has.
fn kinds(b: &Builder, basics: &Basics) -> Result<Vec<Kind>, ArchError> {
    let n = basics.layers as usize;
    let t = b.text;
    // 1. An explicit list: it supersedes every key a config class derives one from.
    if let Some((field, types)) = t.strings(&["layer_types", "layers_block_type", "block_types"])? {
        t.mark_read(&[
            "max_window_layers",
            "use_sliding_window",
            "sliding_window_pattern",
            "_sliding_window_pattern",
            "full_attn_idxs",
            "full_attention_interval",
            "attn_layer_period",
            "attn_layer_offset",
            "attn_layer_indices",
            "attention_layer_indices",
            "hybrid_override_pattern",
            "no_rope_layers",
            "no_rope_layer_interval",
            "global_attn_every_n_layers",
            "layer_group_size",
            "hybrid_layer_ids",
        ]);
        // RecurrentGemma lists one period of its pattern (configuration_recurrent_gemma.py
        // `layers_block_type`: (block_types × 100)[:num_hidden_layers]).
        let types: Vec<String> = if b.fam.cycle_block_types == Some(true) && !types.is_empty() {
            types.iter().cycle().take(n).cloned().collect()
        } else {
            types
        };
        if types.len() < n {
            return Err(ArchError::field(
                &field,
                format!(
                    "{field} lists {} layers but num_hidden_layers is {n}",
                    types.len()
                ),
            ));
        }
        // Dory's released configs list every layer as an attention block and an "mlp" block;
        // its config class keeps every other entry (configuration_dory.py __post_init__).
        let types: Vec<String> =
            if b.fam.paired_blocks == Some(true) && types.iter().any(|x| x == "mlp") {
                types.into_iter().step_by(2).collect()
            } else {
                types
            };
        let n = if b.fam.paired_blocks == Some(true) {
            n.min(types.len())
        } else {
            n
        };
        let mut out = Vec::with_capacity(n);
        for (i, name) in types.iter().take(n).enumerate() {
            out.push(kind_of(name).ok_or_else(|| {
                ArchError::field(
                    &field,
                    format!(
                        "{field}[{i}] = \"{}\" is a layer kind vramplan does not know; it cannot size this model",
                        name.chars().take(40).collect::<String>()
                    ),
                )
            })?);
        }
        return Ok(out);
    }
    // 2. Nemotron-H: one character per layer (M Mamba-2, * attention, - MLP, E MoE).
    if let Some(p) = t.string(&["hybrid_override_pattern"])? {
        let field = t.field("hybrid_override_pattern");
        let chars: Vec<char> = p.chars().collect();
        if chars.len() < n {
            return Err(ArchError::field(
                &field,
                format!(
                    "{field} has {} layers but num_hidden_layers is {n}",
                    chars.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(n);
        for (i, c) in chars.iter().take(n).enumerate() {
            out.push(kind_of(&c.to_string()).ok_or_else(|| {
                ArchError::field(
                    &field,
                    format!("{field}[{i}] = '{c}' is a layer kind vramplan does not know"),
                )
            })?);
        }
        return Ok(out);
    }
    // 3. Jamba: attention where i % period == offset, Mamba elsewhere.
    if t.has(&["attn_layer_period"]) {
        let period = t.u64_or(&["attn_layer_period"], 0)?.max(1);
        let offset = t.u64_or(&["attn_layer_offset"], 0)?;
        return Ok((0..n as u64)
            .map(|i| {
                if i % period == offset {
                    Kind::Full
                } else {
                    Kind::Linear
                }
            })
            .collect());
    }
    // 4. Attention layer indices (Bamba, Falcon-H1-style configs).
    if let Some((_, idx)) = t.u64s(&[
        "attn_layer_indices",
        "attention_layer_indices",
        "full_attn_idxs",
    ])? {
        return Ok((0..n as u64)
            .map(|i| {
                if idx.contains(&i) {
                    Kind::Full
                } else {
                    Kind::Linear
                }
            })
            .collect());
    }
    // 5. Qwen3-Next / Qwen3.5: every interval-th layer full, the others linear.
    if let Some(every) = t.u64(&["full_attention_interval"])?.filter(|&e| e > 0) {
        return Ok((0..n as u64)
            .map(|i| {
                if (i + 1) % every == 0 {
                    Kind::Full
                } else {
                    Kind::Linear
                }
            })
            .collect());
    }
    // 6. The family's derivation (its config class's __post_init__).
    let window = t
        .u64(&["sliding_window", "sliding_window_size"])?
        .filter(|&w| w > 0);
    let local_kind = if t.u64(&["attention_chunk_size"])?.is_some_and(|c| c > 0) {
        Kind::Chunked
    } else {
        Kind::Sliding
    };
    let rule = b.fam.pattern.unwrap_or_default();
    let every = match &b.fam.pattern_key {
        Some(k) => t.u64(&[k.as_str()])?,
        None => None,
    }
    .or(b.fam.pattern_every)
    .unwrap_or(0);
    let has_local = window.is_some() || local_kind == Kind::Chunked;
    if let Some(key) = &b.fam.local_flags_key {
        if has_local {
            if let Some((field, flags)) = t.u64s(&[key.as_str()])? {
                if flags.len() < n {
                    return Err(ArchError::field(
                        &field,
                        format!(
                            "{field} lists {} layers but num_hidden_layers is {n}",
                            flags.len()
                        ),
                    ));
                }
                return Ok(flags
                    .iter()
                    .take(n)
                    .map(|&f| if f != 0 { local_kind } else { Kind::Full })
                    .collect());
            }
        }
    }
    Ok(match rule {
        PatternRule::GlobalEvery if has_local && every > 0 => (0..n as u64)
            .map(|i| {
                if (i + 1) % every == 0 {
                    Kind::Full
                } else {
                    local_kind
                }
            })
            .collect(),
        PatternRule::GlobalFirstEvery if has_local && every > 0 => (0..n as u64)
            .map(|i| {
                if i % every == 0 {
                    Kind::Full
                } else {
                    local_kind
                }
            })
            .collect(),
        PatternRule::AllLinear => vec![Kind::Linear; n],
        PatternRule::AllHybrid => vec![Kind::Hybrid; n],
        PatternRule::AllIndexed => vec![Kind::Indexed; n],
        PatternRule::MaxWindowLayers => {
            let on = t.bool(&["use_sliding_window"])?.unwrap_or(false) && window.is_some();
            let from = t.u64_or(&["max_window_layers"], 0)?;
            (0..n as u64)
                .map(|i| {
                    if on && i >= from {
                        Kind::Sliding
                    } else {
                        Kind::Full
                    }
                })
                .collect()
        }
        _ => {
            let k = if t.bool(&["use_sliding_window"])? == Some(false) {
                Kind::Full
            } else if window.is_some() {
                Kind::Sliding
            } else if local_kind == Kind::Chunked {
                Kind::Chunked
            } else {
                Kind::Full
            };
            vec![k; n]
        }
    })
}

/// Gemma 3n / Gemma 4 KV sharing: the last `num_kv_shared_layers` layers read the cache of the
/// last earlier layer of the same type (configuration_gemma3n.py `kv_sharing_modes`).
fn kv_sharing(b: &Builder, kinds: &[Kind], mixers: &mut [Mixer]) -> Result<(), ArchError> {
    // Mistral Large 4 (configuration_mistral_large4.py): layer i reads the latent cache of
    // kv_source_layers[i], an earlier layer that keeps its own.
    if let Some((field, sources)) = b.text.u64s(&["kv_source_layers"])? {
        for (i, m) in mixers.iter_mut().enumerate() {
            let Some(&src) = sources.get(i) else { break };
            if src as usize == i {
                continue;
            }
            if src as usize > i || sources.get(src as usize) != Some(&src) {
                return Err(ArchError::field(
                    &field,
                    format!("{field}[{i}] = {src} is not an earlier layer keeping its own cache"),
                ));
            }
            if let Mixer::Attention { source, .. } = m {
                *source = Some(src as u32);
            }
        }
        return Ok(());
    }
    let shared = b.text.u64_or(&["num_kv_shared_layers"], 0)? as usize;
    let n = mixers.len();
    if shared == 0 || n == 0 {
        return Ok(());
    }
    let field = b.text.field("num_kv_shared_layers");
    // A speculative-decoding assistant whose every layer reads its target model's cache
    // (modeling_gemma4_unified_assistant.py: `shared_kv_states` from the backbone).
    if shared >= n
        && b.top
            .model_type()
            .is_some_and(|m| m.ends_with("_assistant"))
    {
        for m in mixers.iter_mut() {
            if let Mixer::Attention { source, .. } = m {
                *source = Some(crate::layer::TARGET_MODEL_CACHE);
            }
        }
        return Ok(());
    }
    if shared >= n {
        return Err(ArchError::field(
            &field,
            format!("{field} = {shared} leaves no layer to produce the shared cache ({n} layers)"),
        ));
    }
    let first = n - shared;
    for i in first..n {
        let producer = (0..first)
            .rev()
            .find(|&j| kinds[j] == kinds[i])
            .ok_or_else(|| {
                ArchError::field(
                    &field,
                    format!("{field}: layer {i}'s type has no earlier layer producing its cache"),
                )
            })?;
        if let Mixer::Attention { source, .. } = &mut mixers[i] {
            *source = Some(producer as u32);
        }
    }
    Ok(())
}

/// Feed-forward block per layer.
fn ffns(b: &Builder, basics: &Basics, kinds: &[Kind]) -> Result<Vec<FfnPlan>, ArchError> {
    let n = kinds.len();
    let t = b.text;
    let moe = moe_fields(b, basics)?;
    let dense_width = |i: usize| -> Result<u64, ArchError> {
        Ok(
            match t.u64(&["intermediate_size_mlp", "dense_intermediate_size"])? {
                Some(w) if w > 0 => w,
                _ => basics.intermediate.get(i),
            },
        )
    };
    let mut out = Vec::with_capacity(n);
    let is_moe: Vec<bool> = match &moe {
        None => vec![false; n],
        Some(_) => moe_schedule(b, n)?,
    };
    for (i, k) in kinds.iter().enumerate() {
        let plan = match k {
            Kind::FfnOnly(Some(true)) => FfnPlan::Moe,
            Kind::FfnOnly(_) => FfnPlan::Dense(dense_width(i)?),
            // Mamba-only layers of Nemotron-H and hybrids that interleave mixers and MLPs.
            Kind::Linear | Kind::Conv if b.fam.recurrent_ffn == Some(false) => FfnPlan::None,
            // Zamba: the hybrid layers' MLP is in their shared transformer block.
            Kind::Hybrid if b.fam.shared_block.is_some() => FfnPlan::None,
            Kind::Compressed(_) if is_moe[i] => FfnPlan::Moe,
            Kind::Full | Kind::Sliding | Kind::Chunked | Kind::PrefillSliding | Kind::Indexed
                if b.fam.attention_ffn == Some(false) =>
            {
                FfnPlan::None
            }
            _ if is_moe[i] => FfnPlan::Moe,
            _ => {
                let w = dense_width(i)?;
                if w == 0 {
                    FfnPlan::None
                } else {
                    FfnPlan::Dense(w)
                }
            }
        };
        out.push(plan);
    }
    Ok(out)
}

/// Which layers route to experts, from the first schedule key the config has.
fn moe_schedule(b: &Builder, n: usize) -> Result<Vec<bool>, ArchError> {
    let t = b.text;
    if let Some((field, types)) = t.strings(&["mlp_layer_types"])? {
        t.mark_read(&[
            "first_k_dense_replace",
            "mlp_only_layers",
            "decoder_sparse_step",
            "moe_layer_freq",
            "interleave_moe_layer_step",
            "moe_layers",
            "expert_layer_period",
            "expert_layer_offset",
        ]);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let name = types.get(i).map(String::as_str).unwrap_or("");
            out.push(match name {
                // DeepSeek-V4's first layers route by a token-id hash table (a buffer).
                "sparse" | "moe" | "hash_moe" => true,
                "dense" | "mlp" => false,
                other => {
                    return Err(ArchError::field(
                        &field,
                        format!("{field}[{i}] = \"{other}\" is neither \"dense\" nor \"sparse\""),
                    ))
                }
            });
        }
        return Ok(out);
    }
    if let Some((_, list)) = t.u64s(&["moe_layers", "moe_layer_indices"])? {
        t.mark_read(&["interleave_moe_layer_step", "first_k_dense_replace"]);
        return Ok((0..n as u64).map(|i| list.contains(&i)).collect());
    }
    let first_dense = t.u64_or(
        &["first_k_dense_replace", "num_dense_layers", "first_k_dense"],
        0,
    )?;
    let dense_only: Vec<u64> = t
        .u64s(&["mlp_only_layers"])?
        .map(|x| x.1)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(n);
    // Llama 4: `interleave_moe_layer_step` k → MoE on layers k-1, 2k-1, ... (modeling_llama4.py
    // `moe_layers = list(range(step - 1, num_hidden_layers, step))`).
    let interleave = t.u64(&["interleave_moe_layer_step"])?.filter(|&s| s > 0);
    // Qwen-MoE: (i + 1) % decoder_sparse_step == 0 (modeling_qwen2_moe.py).
    let sparse_step = t.u64(&["decoder_sparse_step"])?.filter(|&s| s > 0);
    // DeepSeek-V2/V3: i >= first_k_dense_replace and i % moe_layer_freq == 0.
    let freq = t.u64(&["moe_layer_freq"])?.filter(|&s| s > 0);
    // Jamba: i % expert_layer_period == expert_layer_offset.
    let period = t.u64(&["expert_layer_period"])?.filter(|&s| s > 0);
    let offset = t.u64_or(&["expert_layer_offset"], 0)?;
    // ERNIE 4.5: moe_layer_start_index ≤ i ≤ moe_layer_end_index, every moe_layer_interval.
    let start = t.u64(&["moe_layer_start_index"])?;
    let end = t.u64(&["moe_layer_end_index"])?;
    let interval = t.u64(&["moe_layer_interval"])?.filter(|&s| s > 0);
    for i in 0..n as u64 {
        let mut moe = i >= first_dense && !dense_only.contains(&i);
        if let Some(k) = interleave {
            moe &= (i + 1) % k == 0;
        }
        if let Some(s) = sparse_step {
            moe &= (i + 1) % s == 0;
        }
        if let Some(f) = freq {
            moe &= i % f == 0;
        }
        if let Some(p) = period {
            moe &= i % p == offset % p;
        }
        if let Some(s) = start {
            moe &= i >= s;
        }
        if let Some(e) = end {
            // -1 (end = last layer) is written as a negative number, which is absent here.
            moe &= i <= e;
        }
        if let Some(iv) = interval {
            moe &= (i - start.unwrap_or(0).min(i)) % iv == 0;
        }
        out.push(moe);
    }
    Ok(out)
}
