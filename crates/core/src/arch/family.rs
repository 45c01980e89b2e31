//! What a model_type's modeling code builds beyond what its config.json says: biases that are
//! not config fields, norm kinds, extra tensors, which recurrent mixer its `linear_attention`
//! layers are, how its config class derives a layer pattern from legacy keys. Data, one entry per
//! transformers model_type with the modeling file it was read from:
//! `data/transformers/architectures.toml` (format at the top of that file).

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

const FILE: &str = include_str!("../../data/transformers/architectures.toml");

/// A trait that is either fixed for the family or read from a config key (with a default).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Toggle {
    Fixed(bool),
    Key(String),
}

/// How the family's config class derives `layer_types` when the file has none.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PatternRule {
    /// transformers' cache default (`cache_utils.get_layer_types_and_kwargs`): every layer
    /// sliding when `sliding_window` is set, else chunked when `attention_chunk_size` is set,
    /// else full.
    #[default]
    Uniform,
    /// Layer i is global when (i + 1) % n == 0, else local (Gemma 2/3, Cohere 2, gpt-oss...).
    GlobalEvery,
    /// Layer i is global when i % n == 0, else local (CWM, Granite SWA).
    GlobalFirstEvery,
    /// Qwen2: layers from `max_window_layers` on are sliding when `use_sliding_window`.
    MaxWindowLayers,
    /// Every layer is the family's recurrent mixer (Mamba, Mamba-2, RWKV).
    AllLinear,
    /// Every layer has attention and the family's recurrent mixer side by side (Falcon-H1).
    AllHybrid,
    /// Every layer is attention with a sparse-attention indexer (DeepSeek-V3.2, GLM-5 DSA).
    AllIndexed,
}

/// One family's traits. Every field is optional; `like` names another entry to start from.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Family {
    /// The modeling file (relative to transformers/) the traits were read from.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub like: Option<String>,
    /// Encoder-only or encoder-decoder: refused with this reason, the sentence's predicate after
    /// the model type ("is an encoder-only model (...): not served as a decoder").
    #[serde(default)]
    pub refuse: Option<String>,

    /// "rms" (a weight), "layer" (weight and bias), "layer_nobias", "none".
    #[serde(default)]
    pub norm: Option<String>,
    /// Norms per decoder layer (2: before attention and before the MLP).
    #[serde(default)]
    pub layer_norms: Option<u64>,
    #[serde(default)]
    pub final_norm: Option<bool>,
    #[serde(default)]
    pub embedding_norm: Option<bool>,

    #[serde(default)]
    pub qkv_bias: Option<Toggle>,
    #[serde(default)]
    pub o_bias: Option<Toggle>,
    /// "none", "head" (a head_dim vector each for q and k), "full" (heads × head_dim for q,
    /// kv_heads × head_dim for k: OLMo 2).
    #[serde(default)]
    pub qk_norm: Option<String>,
    /// A config key that switches the qk norm on (e.g. `use_qk_norm`).
    #[serde(default)]
    pub qk_norm_key: Option<String>,
    #[serde(default)]
    pub sinks: Option<bool>,
    /// Sinks only on sliding-window layers (MiMo-V2-Flash).
    #[serde(default)]
    pub sliding_only_sinks: Option<bool>,
    /// Sliding-window layers have this many times the config's KV heads (MiMo-V2-Flash: 2).
    #[serde(default)]
    pub sliding_kv_factor: Option<u64>,
    /// Layers that read another layer's KV have no k/v projections (nor a k norm) of their
    /// own (Gemma 3n, Gemma 4).
    #[serde(default)]
    pub kv_shared_drops_kv: Option<bool>,
    /// An output gate on attention: "q" (q_proj twice as wide: query and gate, Qwen3-Next),
    /// "linear" (a gate_proj [heads × head_dim, hidden], latent attention included: HY-V4) or
    /// "latent_fused" (AXK2: q_gate_proj from the normed and raw q latents, no q_b_proj).
    #[serde(default)]
    pub attention_gate: Option<String>,
    /// The query and output projections are routed experts of kv_heads × head_dim (JetMoE's
    /// mixture of attention heads).
    #[serde(default)]
    pub attention_experts: Option<bool>,
    /// Cross-attention to the vision encoder's outputs: the config key listing the layers that
    /// have it (Mllama `cross_attention_layers`), or the key of an interval (IDEFICS
    /// `cross_layer_interval`: layers i with i % n == 0).
    #[serde(default)]
    pub cross_layers_key: Option<String>,
    #[serde(default)]
    pub cross_interval_key: Option<String>,
    /// Every layer has cross-attention (BLIP's text decoder).
    #[serde(default)]
    pub cross_all: Option<bool>,
    /// Cross-attention layers have no self-attention (Mllama); else the cross-attention block
    /// comes beside the layer's own (IDEFICS).
    #[serde(default)]
    pub cross_replaces_attention: Option<bool>,
    /// The width keys and values of the cross-attention are projected from, as a formula
    /// ("h" for Mllama, whose projector maps the image features to the text width).
    #[serde(default)]
    pub cross_kv_input: Option<String>,
    /// Per-head q and k RMSNorms in the cross-attention (Mllama).
    #[serde(default)]
    pub cross_qk_norm: Option<bool>,
    /// Parameters of each cross-attention block beyond q/k/v/o and its norms, as a formula
    /// (gates, the block's own MLP and norms).
    #[serde(default)]
    pub cross_extra: Option<String>,
    /// Whether transformers caches the image tokens' K and V (Mllama: yes).
    #[serde(default)]
    pub cross_cached: Option<bool>,
    /// The config lists each layer as two blocks, an attention one and an "mlp" one (Dory's
    /// released configs: its config class halves layer_types and the layer counts).
    #[serde(default)]
    pub paired_blocks: Option<bool>,
    /// A section of layers run several times over with the same weights (Dory's recurrent
    /// section): the config keys of its first layer, its length, the number of runs, and the
    /// cache mode ("per_loop": each run caches its own K/V; "last_loop": one cache per layer).
    #[serde(default)]
    pub loop_start_key: Option<String>,
    #[serde(default)]
    pub loop_count_key: Option<String>,
    /// Or the config key of the index one past the section's last layer (Inkling 2 loop).
    #[serde(default)]
    pub loop_end_key: Option<String>,
    #[serde(default)]
    pub loop_times_key: Option<String>,
    #[serde(default)]
    pub loop_cache_key: Option<String>,
    /// Each config layer is two attention sublayers, each with its own cache, a dense MLP of
    /// its own and two norms, the layer's MoE on the first (LongCat-Flash): described as two
    /// layers (reuse.rs).
    #[serde(default)]
    pub paired_sublayers: Option<bool>,
    /// A per-layer 0/1 list where 0 marks a layer without rotary positions (Mistral Large 4's
    /// `no_rope_layers`, whose latent layers then cache no rope key).
    #[serde(default)]
    pub rope_flags_key: Option<String>,
    /// The hybrid layers run a transformer block shared between them (Zamba "zamba", Zamba 2
    /// "zamba2": shared.rs).
    #[serde(default)]
    pub shared_block: Option<String>,
    /// The layer-type list is one period of the pattern, repeated over the layers
    /// (RecurrentGemma's `block_types`).
    #[serde(default)]
    pub cycle_block_types: Option<bool>,
    /// Every attention layer is local, over the config's window (RecurrentGemma).
    #[serde(default)]
    pub local_attention: Option<bool>,
    /// No context limit in the architecture (local attention and recurrent layers only): a
    /// config without one is taken as unbounded, as for models without positions.
    #[serde(default)]
    pub unbounded_context: Option<bool>,
    /// The head is never tied, whatever `tie_word_embeddings` says (CPM-Ant: its head is a
    /// vocabulary-sized slice of a larger embedding, shipped as its own tensor).
    #[serde(default)]
    pub untied_head: Option<bool>,
    /// The text model has no token embedding, final norm or head of its own (BLT).
    #[serde(default)]
    pub no_embeddings: Option<bool>,
    /// A caveat every description of the family carries in `warnings`.
    #[serde(default)]
    pub warning: Option<String>,
    /// The config key of the head's vocabulary when it differs from the embedding's.
    #[serde(default)]
    pub head_vocab_key: Option<String>,
    /// Layers cache their last N input hidden states instead of K and V, N from this key
    /// (XLNet's `mem_len`).
    #[serde(default)]
    pub memory_len_key: Option<String>,
    /// The code that builds the family's hybrid layers ("inkling": inkling.rs).
    #[serde(default)]
    pub hybrid_block: Option<String>,
    /// HRM's cycles: `num_hidden_layers` cached layer slots run over two stacks of
    /// `num_layers_per_stack` layers (reuse.rs).
    #[serde(default)]
    pub hrm_cycles: Option<bool>,
    /// Multi-query attention when this key is true (Falcon's `multi_query`).
    #[serde(default)]
    pub multi_query_key: Option<String>,

    /// "gated" or "plain".
    #[serde(default)]
    pub mlp: Option<String>,
    #[serde(default)]
    pub mlp_bias: Option<Toggle>,
    /// MLP width when the config gives none: "4h" (GPT-2's n_inner = null).
    #[serde(default)]
    pub intermediate_default: Option<String>,

    #[serde(default)]
    pub router_bias: Option<bool>,
    #[serde(default)]
    pub expert_bias: Option<bool>,
    /// Shared experts when the config names none (Llama 4: one, as wide as a routed expert).
    #[serde(default)]
    pub shared_experts: Option<u64>,
    /// The router is an MLP described by `layer_extra` rather than one [experts, hidden]
    /// matrix (ZAYA).
    #[serde(default)]
    pub router_mlp: Option<bool>,
    /// The first layer differs from the others (formulas see `first`).
    #[serde(default)]
    pub first_layer_differs: Option<bool>,
    /// Qwen-MoE's sigmoid gate on the shared expert (hidden → 1).
    #[serde(default)]
    pub shared_expert_gate: Option<bool>,
    /// `moe_intermediate_size` lists one width per expert group, each group with its own router
    /// (ERNIE-4.5-VL's text and vision experts).
    #[serde(default)]
    pub moe_groups: Option<bool>,
    /// The config key of the width routed experts take in and give out when it is not the
    /// hidden size (Muse Spark's `moe_hidden_size`).
    #[serde(default)]
    pub expert_hidden_key: Option<String>,
    /// Routed experts are gated (gate, up, down) unless this is "plain".
    #[serde(default)]
    pub expert_mlp: Option<String>,

    /// "rope" (default), "learned" (a position table of `max_position_embeddings` + offset
    /// rows), "none" (ALiBi).
    #[serde(default)]
    pub positions: Option<String>,
    #[serde(default)]
    pub positions_offset: Option<u64>,
    #[serde(default)]
    pub lm_head_bias: Option<Toggle>,

    /// What the family's `linear_attention` layers are: "mamba", "mamba2", "gated_deltanet",
    /// "kimi_delta", "lightning", "short_conv".
    #[serde(default)]
    pub linear_attention: Option<String>,
    /// Kimi Delta Attention's forget and output gates: "low_rank" (f_a/f_b, g_a/g_b: Kimi
    /// Linear) or "full" (f_proj, g_proj [heads × head_dim, hidden]: Bailing hybrid).
    #[serde(default)]
    pub delta_gates: Option<String>,
    /// Whether attention layers have a feed-forward block (Nemotron-H: each block is one mixer
    /// or one MLP/MoE).
    #[serde(default)]
    pub attention_ffn: Option<bool>,
    /// The layer count is the length of the layer-type list (Nemotron-H: num_hidden_layers is
    /// deprecated there).
    #[serde(default)]
    pub layers_from_pattern: Option<bool>,
    /// Nested objects whose keys count as the text config's own (DBRX `attn_config`,
    /// `ffn_config`).
    #[serde(default)]
    pub flatten: Option<Vec<String>>,
    /// A config key giving the embedding width when it differs from hidden_size (OPT-350m's
    /// `word_embed_proj_dim`: project_in / project_out matrices).
    #[serde(default)]
    pub embed_dim_key: Option<String>,
    /// Whether recurrent layers have a feed-forward block (Mamba, Nemotron-H's "M" layers: no).
    #[serde(default)]
    pub recurrent_ffn: Option<bool>,
    /// Jamba's RMSNorms on dt, B and C inside its Mamba mixer.
    #[serde(default)]
    pub mamba_dt_norms: Option<bool>,
    #[serde(default)]
    pub pattern: Option<PatternRule>,
    /// A per-layer 0/1 list where 1 marks a local (sliding/chunked) layer (Llama 4
    /// `no_rope_layers`), read before the period.
    #[serde(default)]
    pub local_flags_key: Option<String>,
    /// The config key holding the pattern period, and its default.
    #[serde(default)]
    pub pattern_key: Option<String>,
    #[serde(default)]
    pub pattern_every: Option<u64>,

    /// Parameters each decoder layer has beyond what the traits describe, as a formula over
    /// config values (`arch/expr.rs`), e.g. Doge's dt_proj and A: "h * heads + heads".
    #[serde(default)]
    pub layer_extra: Option<String>,
    /// Model-level parameters beyond embeddings, norms and head, as a formula (first stage).
    #[serde(default)]
    pub global_extra: Option<String>,
    /// A config key that must be true for the MoE fields to count (Doge `is_moe`).
    #[serde(default)]
    pub moe_key: Option<String>,
    /// The MLP width as a formula when the config gives none directly (MPT:
    /// "h * expansion_ratio").
    #[serde(default)]
    pub intermediate_formula: Option<String>,
    /// A vision embedding outside any vision_config, as a formula (Fuyu's linear patch
    /// embedding), counted as a tower.
    #[serde(default)]
    pub tower_extra: Option<String>,
    /// Config keys the family's modeling code reads but that do not change the description
    /// (GPT-Neo's `window_size`: transformers caches its local layers in full), so the check
    /// for unread memory-relevant keys passes them.
    #[serde(default)]
    pub ignored: Option<Vec<String>>,
    /// The MLP width computed by a family rule in special.rs (LFM2's auto-adjusted width).
    #[serde(skip)]
    pub intermediate_override: Option<u64>,
    /// Free-form notes (why a trait is what it is).
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    family: HashMap<String, Family>,
}

fn table() -> &'static HashMap<String, Family> {
    static T: OnceLock<HashMap<String, Family>> = OnceLock::new();
    T.get_or_init(|| {
        // Compiled in and checked by the tests: a failure here is a build defect.
        let doc: Doc = toml::from_str(FILE).expect("architectures.toml parses");
        let raw = doc.family;
        let mut out = HashMap::with_capacity(raw.len());
        for (name, fam) in &raw {
            out.insert(name.clone(), resolve(fam, &raw, 0));
        }
        out
    })
}

/// A family with its `like` chain filled in (own fields win).
fn resolve(f: &Family, all: &HashMap<String, Family>, depth: u32) -> Family {
    let Some(parent) = f.like.as_ref().and_then(|p| all.get(p)) else {
        return f.clone();
    };
    if depth > 8 {
        return f.clone();
    }
    let p = resolve(parent, all, depth + 1);
    macro_rules! pick {
        ($($field:ident),*) => { Family { $($field: f.$field.clone().or(p.$field.clone()),)* } };
    }
    pick!(
        source,
        like,
        refuse,
        norm,
        layer_norms,
        final_norm,
        embedding_norm,
        qkv_bias,
        o_bias,
        qk_norm,
        qk_norm_key,
        sinks,
        sliding_only_sinks,
        sliding_kv_factor,
        attention_gate,
        attention_experts,
        cross_layers_key,
        paired_blocks,
        loop_start_key,
        loop_count_key,
        loop_end_key,
        loop_times_key,
        loop_cache_key,
        hrm_cycles,
        hybrid_block,
        memory_len_key,
        head_vocab_key,
        no_embeddings,
        warning,
        untied_head,
        cycle_block_types,
        local_attention,
        unbounded_context,
        shared_block,
        rope_flags_key,
        paired_sublayers,
        cross_interval_key,
        cross_all,
        cross_replaces_attention,
        cross_kv_input,
        cross_qk_norm,
        cross_extra,
        cross_cached,
        kv_shared_drops_kv,
        multi_query_key,
        mlp,
        mlp_bias,
        intermediate_default,
        router_bias,
        expert_bias,
        shared_experts,
        shared_expert_gate,
        router_mlp,
        first_layer_differs,
        expert_mlp,
        moe_groups,
        expert_hidden_key,
        positions,
        positions_offset,
        lm_head_bias,
        linear_attention,
        delta_gates,
        attention_ffn,
        layers_from_pattern,
        flatten,
        embed_dim_key,
        recurrent_ffn,
        mamba_dt_norms,
        pattern,
        local_flags_key,
        pattern_key,
        pattern_every,
        layer_extra,
        global_extra,
        moe_key,
        intermediate_formula,
        tower_extra,
        ignored,
        intermediate_override,
        notes
    )
}

/// The family of `model_type`, if described.
pub fn family(model_type: &str) -> Option<&'static Family> {
    table().get(model_type)
}

/// Every described model_type (for tests and `vramplan models --architectures`).
pub fn known() -> impl Iterator<Item = &'static str> {
    table().keys().map(String::as_str)
}
