//! Model description: what a model is, for memory. It is built only by the config.json mapping
//! (`crate::arch::describe`), whatever the model came from (the catalogue's stored config.json
//! files, a file on disk, a pasted config, a GGUF header translated to config.json keys), so
//! each architecture has one description.
//!
//! The description holds every weight tensor (text decoder layers grouped into kinds of identical
//! layers, the embeddings and head, vision/audio towers), each decoder layer's mixer and cache
//! (`crate::layer`), the multi-token-prediction layers apart, and the warnings the mapping raised.

use crate::layer::{Attention, Ffn, Latent, Layer, Moe, Recurrent, RecurrentKind};
pub use crate::precision::Role;
use serde::{Deserialize, Serialize};

/// MLP shape of the typical layer: gated (gate, up, down: SwiGLU/GeGLU) or plain (up, down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MlpKind {
    #[default]
    Gated,
    Plain,
}

/// The text model's normalisation: RMSNorm (a weight) or LayerNorm (weight and bias).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    #[default]
    Rms,
    Layer,
}

/// A pre-quantized checkpoint's storage: from its `quantization_config` or the catalogue's
/// metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantSpec {
    pub method: String,
    #[serde(default)]
    pub bits: Option<u32>,
    #[serde(default)]
    pub group_size: Option<u32>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// The real tensor bytes of a model file, by where they live: decoder layer i, the input side
/// (token embedding, vision tower: the first pipeline stage, and llama.cpp keeps the token
/// embedding on the CPU) and the output side (final norm and head: the last stage).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeasuredWeights {
    pub layer_bytes: Vec<u64>,
    /// Bytes of each layer's routed-expert tensors (GGUF `*_exps`), part of `layer_bytes`.
    pub expert_bytes: Vec<u64>,
    /// Every tensor by name (GGUF files), for placement rules that name tensors (llama.cpp
    /// `-ot`).
    pub tensors: Vec<MeasuredTensor>,
    pub input_bytes: u64,
    pub output_bytes: u64,
}

impl MeasuredWeights {
    pub fn total(&self) -> u64 {
        self.layer_bytes.iter().fold(
            self.input_bytes.saturating_add(self.output_bytes),
            |a, b| a.saturating_add(*b),
        )
    }
}

/// One tensor of a model file: its name, bytes, and where it counts (decoder layer, or the
/// output side; neither = the input side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredTensor {
    pub name: String,
    pub bytes: u64,
    pub layer: Option<u64>,
    pub output: bool,
}

/// How a tensor is divided under tensor parallelism (vLLM's column/row-parallel linears).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Every rank holds a copy (norms, routers, MLA down-projections).
    Replicated,
    /// Output features split (column-parallel: q, gate/up, embeddings by vocabulary).
    Rows,
    /// Input features split (row-parallel: o_proj, down_proj).
    Cols,
    /// k/v projections: `rows` = KV heads × head width, split by KV head and replicated when
    /// there are fewer KV heads than ranks; `head_dim` is the width of one head.
    KvRows { head_dim: u64 },
}

/// One weight tensor (or `count` identical ones): `rows` output features × `cols` inputs;
/// vectors have `cols == 1` and role `Small`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tensor {
    pub role: Role,
    pub rows: u64,
    pub cols: u64,
    pub count: u64,
    pub split: Split,
}

impl Tensor {
    pub fn matrix(role: Role, rows: u64, cols: u64, split: Split) -> Tensor {
        Tensor {
            role,
            rows,
            cols,
            count: 1,
            split,
        }
    }
    pub fn vector(n: u64) -> Tensor {
        Tensor {
            role: Role::Small,
            rows: n,
            cols: 1,
            count: 1,
            split: Split::Replicated,
        }
    }
    pub fn times(mut self, count: u64) -> Tensor {
        self.count = self.count.saturating_mul(count);
        self
    }
    pub fn elements(&self) -> u64 {
        self.rows
            .saturating_mul(self.cols)
            .saturating_mul(self.count)
    }
}

/// Which pipeline stage holds a model-level tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    First,
    Last,
}

/// Every tensor of the text decoder and its towers, with the decoder layers grouped into kinds
/// of identical layers (so a 61-layer model with two kinds costs two layer descriptions).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    /// Model-level tensors: embeddings, final norm, head, and every tower tensor.
    pub global: Vec<(Stage, Tensor)>,
    /// The distinct kinds of decoder layer.
    pub kinds: Vec<Layer>,
    /// `kinds[layer_kind[i]]` describes decoder layer i.
    pub layer_kind: Vec<u16>,
    /// Parameters of routed experts that are not active for a token, summed over layers.
    pub inactive_expert_params: u64,
}

impl Inventory {
    /// Parameters of every tensor (towers included; MTP layers are not in the inventory).
    pub fn params(&self) -> u64 {
        let global = self
            .global
            .iter()
            .fold(0u64, |a, (_, t)| a.saturating_add(t.elements()));
        let per_kind: Vec<u64> = self.kinds.iter().map(Layer::params).collect();
        self.layer_kind
            .iter()
            .fold(global, |a, &k| a.saturating_add(per_kind[k as usize]))
    }

    /// Count of decoder layers of each kind.
    pub fn kind_counts(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.kinds.len()];
        for &k in &self.layer_kind {
            counts[k as usize] += 1;
        }
        counts
    }

    /// The description of decoder layer `i`.
    pub fn layer(&self, i: u64) -> &Layer {
        &self.kinds[self.layer_kind[i as usize] as usize]
    }
}

/// What a tower encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TowerKind {
    Vision,
    Audio,
    /// Projectors and adapters between an encoder and the text model.
    Projector,
    /// Other non-text modules (e.g. a video or speech decoder's parts counted by transformers).
    Other,
}

/// A non-text part of the checkpoint (its tensors are in `Inventory::global`, first stage).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tower {
    pub kind: TowerKind,
    /// What it is, e.g. "SigLIP vision encoder (27 layers)".
    pub name: String,
    pub params: u64,
}

/// Multi-token-prediction layers (DeepSeek-V3 `num_nextn_predict_layers`, GLM-4.5, Qwen3-Next):
/// shipped with the checkpoint, loaded by engines only for speculative decoding, so counted
/// apart from `params`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mtp {
    pub layers: u64,
    pub params: u64,
    /// The tensors of all MTP layers (each a decoder layer plus its projection and norms).
    pub tensors: Vec<Tensor>,
}

/// The decoder layers by kind, as the estimate JSON's `layers` reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct LayerSummary {
    /// Decoder layers (MTP layers apart).
    pub total: u64,
    /// Layers of each kind: "full_attention", "sliding_attention", "chunked_attention",
    /// "kv_shared_attention", "latent_attention", "latent_attention_indexed",
    /// "indexed_attention", "compressed_attention", "memory_attention",
    /// "reference_sliding_attention", "mamba", "mamba2", "gated_deltanet",
    /// "kimi_delta_attention", "short_conv", "lightning_attention", "rwkv", "rg_lru", "mlstm",
    /// "cca", "<recurrent>+<attention>" for hybrid layers, "cross_attention" (Mllama) or
    /// "<kind>+cross_attention" (IDEFICS), "mlp_only", "moe_only".
    pub kinds: std::collections::BTreeMap<String, u64>,
    /// Sliding-window or chunk lengths and how many layers use each.
    pub windows: Vec<WindowCount>,
    /// Recurrent state bytes per sequence (whole model, conv + recurrent states as
    /// transformers' cache allocates them), whatever the context.
    pub state_bytes_per_sequence: u64,
    /// Layers with routed experts.
    pub moe_layers: u64,
    /// Multi-token-prediction layers and their parameters (not in `params`; engines load them
    /// only for speculative decoding).
    pub mtp_layers: u64,
    pub mtp_params: u64,
    /// The pattern, one letter per layer: F full, S sliding, C chunked, X KV-shared, L latent,
    /// I with a sparse-attention indexer (latent or not), Z compressed (DeepSeek-V4), P reference
    /// sliding window (every prompt token and a window of generated ones), Y a memory of hidden
    /// states (XLNet), R recurrent, H hybrid, A cross-attention only (Mllama), M mixer-less
    /// (MLP/MoE only).
    pub pattern: String,
}

/// One window length and the layers using it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowCount {
    pub tokens: u64,
    pub layers: u64,
}

/// A recurrent mixer a hybrid family's config describes although none of its layers uses it
/// (granite-4.0-micro: a GraniteMoeHybrid config whose `layer_types` are all "attention"). It
/// holds no memory in the model; an engine that decides "hybrid" from the model class sizes its
/// state anyway (vLLM before 0.11.1, engine/vllm.rs).
#[derive(Debug, Clone, PartialEq)]
pub struct UnusedState {
    pub state: Recurrent,
    /// config.json lists `layer_types` and every entry is "attention": the spelling vLLM's
    /// `ModelConfig.is_hybrid` checks from 0.11.1 (vllm/config/model.py).
    pub layer_types_all_attention: bool,
}

/// A model as the estimator sees it. Field meanings: the comments, and README "How memory is
/// computed".
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDesc {
    // Identity: the catalogue's meta.toml, the file it was read from, or the caller.
    pub id: String,
    pub aliases: Vec<String>,
    pub family: String,
    pub source: String,
    pub base: Option<String>,
    pub quantization: Option<QuantSpec>,
    pub published_params: Option<u64>,
    pub published_params_source: Option<String>,
    /// The size in the model's name (7B → 7e9): only the seed articles' naive arithmetic uses it.
    pub nominal_params: Option<u64>,

    /// transformers' `model_type` of the text model (e.g. "qwen3_next"; for a multimodal model
    /// its text_config's, e.g. "qwen2_5_vl_text" — `top_model_type` keeps the outer one).
    pub model_type: String,
    pub top_model_type: String,
    /// `max_position_embeddings` (or the family's own name for it).
    pub max_context: u64,
    /// Released dtype: "bf16", "fp16" or "fp32".
    pub dtype: String,
    pub num_layers: u64,
    pub hidden_size: u64,
    pub vocab_size: u64,
    pub tie_embeddings: bool,

    // The representative layer's figures, for the rules that need one number (activation
    // peaks, launch checks, messages): the first attention layer and the first MoE layer.
    // Everything per layer — KV, state, weights — comes from `inventory`.
    pub num_attention_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    /// Width of the dense MLP (the first dense layer's; else the routed experts').
    pub intermediate_size: u64,
    pub mlp: MlpKind,
    pub norm: NormKind,
    pub moe: Option<Moe>,
    pub mla: Option<Latent>,

    pub inventory: Inventory,
    pub towers: Vec<Tower>,
    pub mtp: Option<Mtp>,
    /// What the mapping could not describe exactly, one line each.
    pub warnings: Vec<String>,
    /// Weight bytes read from a model file, which replace the bytes computed from the
    /// inventory and the precision (set by the file readers, never by the catalogue).
    pub measured: Option<MeasuredWeights>,
    /// The recurrent mixer a hybrid family's config describes when no layer uses it.
    pub unused_state: Option<UnusedState>,
}

impl ModelDesc {
    /// The inventory (built once by the mapping).
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Decoder layer `i`.
    pub fn layer(&self, i: u64) -> &Layer {
        self.inventory.layer(i)
    }

    /// Every decoder layer in order.
    pub fn layers(&self) -> impl Iterator<Item = &Layer> + '_ {
        self.inventory
            .layer_kind
            .iter()
            .map(move |&k| &self.inventory.kinds[k as usize])
    }

    /// The attention of the first layer that has one.
    pub fn first_attention(&self) -> Option<&Attention> {
        self.inventory
            .kinds
            .iter()
            .find_map(|k| k.attention.as_ref())
    }

    /// Whether any layer keeps a recurrent state.
    pub fn has_recurrent_layers(&self) -> bool {
        self.inventory.kinds.iter().any(|k| k.recurrent.is_some())
    }

    /// The first layer kind an engine profile cannot size, named for its one-line refusal: a
    /// cache that is not K and V rows (see [`Layer::cache_beyond_kv_rows`]) or a recurrent
    /// mixer outside `recurrent_ok` (the kinds the profile sizes).
    pub fn kind_beyond(&self, recurrent_ok: &[RecurrentKind]) -> Option<&'static str> {
        self.inventory.kinds.iter().find_map(|k| {
            k.cache_beyond_kv_rows().or(match &k.recurrent {
                Some(r) if !recurrent_ok.contains(&r.kind) => Some(r.kind.name()),
                _ => None,
            })
        })
    }

    /// The first layer kind whose cache is not K and V rows an attention pool holds: what the
    /// vLLM and SGLang profiles refuse, naming it (recurrent mixers are refused apart).
    pub fn cache_beyond_kv_pools(&self) -> Option<&'static str> {
        self.inventory
            .kinds
            .iter()
            .find_map(Layer::cache_beyond_kv_rows)
    }

    /// Whether every layer is an attention layer caching its own full/windowed K and V and no
    /// layer has a recurrent state: the models the engine rules written for attention alone
    /// describe exactly.
    pub fn attention_only(&self) -> bool {
        self.inventory.kinds.iter().all(|k| {
            k.recurrent.is_none()
                && k.attention
                    .as_ref()
                    .is_some_and(|a| a.caches() && !a.shares_kv())
        })
    }

    /// Total parameters as transformers counts them (towers included, tied weights once, MTP
    /// layers apart).
    pub fn params(&self) -> u64 {
        self.inventory.params()
    }

    /// Parameters of the towers (vision, audio, projectors).
    pub fn tower_params(&self) -> u64 {
        self.towers
            .iter()
            .fold(0u64, |a, t| a.saturating_add(t.params))
    }

    /// Parameters of the language model alone.
    pub fn text_params(&self) -> u64 {
        self.params().saturating_sub(self.tower_params())
    }

    /// Parameters used per token: routed experts count only `experts_per_token`.
    pub fn active_params(&self) -> u64 {
        self.params()
            .saturating_sub(self.inventory.inactive_expert_params)
    }

    /// The released dtype's bytes per element: "bf16" → 2.
    pub fn dtype_bytes(&self) -> u64 {
        match self.dtype.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => 4,
            _ => 2,
        }
    }

    /// The decoder layers by kind (the estimate JSON's `layers`, `inspect`'s pattern).
    pub fn layer_summary(&self) -> LayerSummary {
        let inv = &self.inventory;
        let counts = inv.kind_counts();
        let mut s = LayerSummary {
            total: self.num_layers,
            ..LayerSummary::default()
        };
        for (kind, &n) in inv.kinds.iter().zip(&counts) {
            if n == 0 {
                continue;
            }
            *s.kinds.entry(kind.kind_name()).or_insert(0) += n;
            if let Some(w) = kind.attention.as_ref().and_then(|a| a.span.limit()) {
                match s.windows.iter_mut().find(|x| x.tokens == w) {
                    Some(x) => x.layers += n,
                    None => s.windows.push(WindowCount {
                        tokens: w,
                        layers: n,
                    }),
                }
            }
            s.state_bytes_per_sequence = s
                .state_bytes_per_sequence
                .saturating_add(kind.state_bytes(self.dtype_bytes(), 1).saturating_mul(n));
            if kind.ffn.moe().is_some() {
                s.moe_layers += n;
            }
        }
        let letters: Vec<char> = inv.kinds.iter().map(|k| k.letter()).collect();
        s.pattern = inv
            .layer_kind
            .iter()
            .map(|&k| letters[k as usize])
            .collect();
        if let Some(m) = &self.mtp {
            s.mtp_layers = m.layers;
            s.mtp_params = m.params;
        }
        s
    }

    /// Fills the representative-layer figures from the inventory (the mapping calls it once the
    /// layers are built, so the two never disagree).
    pub fn summarise(&mut self) {
        let inv = &self.inventory;
        if let Some(a) = inv.kinds.iter().find_map(|k| k.attention.as_ref()) {
            self.num_attention_heads = a.heads;
            self.num_kv_heads = a.kv_heads;
            self.head_dim = a.k_head_dim;
            self.mla = a.latent;
        }
        let moe = inv.kinds.iter().find_map(|k| match &k.ffn {
            Ffn::Moe { moe, gated } => Some((moe.clone(), *gated)),
            _ => None,
        });
        let dense = inv.kinds.iter().find_map(|k| match k.ffn {
            Ffn::Dense { width, gated, .. } => Some((width, gated)),
            _ => None,
        });
        self.mlp = match (dense, &moe) {
            (Some((_, false)), _) | (None, Some((_, false))) => MlpKind::Plain,
            _ => MlpKind::Gated,
        };
        self.intermediate_size = match (dense, &moe) {
            (Some((w, _)), _) => w,
            (None, Some((m, _))) => m.expert_intermediate_size,
            (None, None) => 0,
        };
        self.moe = moe.map(|(mut m, _)| {
            m.dense_intermediate_size = dense.map_or(0, |d| d.0);
            m
        });
        self.num_layers = inv.layer_kind.len() as u64;
    }

    /// Checks that a description is internally consistent before anything is computed from it.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.id;
        let positive = [
            ("num_hidden_layers", self.num_layers),
            ("hidden_size", self.hidden_size),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_context),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("model '{id}': {name} must be positive"));
            }
        }
        // The same bounds every reader and the mapping check before allocating (limits.rs).
        use crate::limits::*;
        let limits = [
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("hidden_size", self.hidden_size, MAX_HIDDEN_SIZE),
            (
                "num_attention_heads",
                self.num_attention_heads,
                MAX_ATTENTION_HEADS,
            ),
            ("head_dim", self.head_dim, MAX_HEAD_DIM),
            (
                "intermediate_size",
                self.intermediate_size,
                MAX_INTERMEDIATE_SIZE,
            ),
            ("vocab_size", self.vocab_size, MAX_VOCAB_SIZE),
            ("max_context", self.max_context, MAX_CONTEXT),
        ];
        for (name, v, max) in limits {
            check(name, v, max).map_err(|e| format!("model '{id}': {e}"))?;
        }
        for (i, k) in self.inventory.kinds.iter().enumerate() {
            if let Some(a) = &k.attention {
                if a.heads == 0 || a.k_head_dim == 0 {
                    return Err(format!(
                        "model '{id}': layer kind {i} has attention without heads or head size"
                    ));
                }
                if a.latent.is_none()
                    && (a.kv_heads == 0
                        || a.kv_heads > a.heads
                        || !a.heads.is_multiple_of(a.kv_heads))
                {
                    return Err(format!(
                        "model '{id}': num_key_value_heads = {} must divide num_attention_heads = {}",
                        a.kv_heads, a.heads
                    ));
                }
                if a.span.limit() == Some(0) {
                    return Err(format!("model '{id}': sliding_window must be positive"));
                }
            }
            if let Some(m) = k.ffn.moe() {
                if m.num_experts == 0
                    || m.experts_per_token == 0
                    || m.experts_per_token > m.num_experts
                    || m.num_experts > MAX_EXPERTS
                {
                    return Err(format!(
                        "model '{id}': MoE needs 1 <= num_experts_per_tok ({}) <= num_experts ({}) <= {MAX_EXPERTS}",
                        m.experts_per_token, m.num_experts
                    ));
                }
            }
        }
        Ok(())
    }
}
