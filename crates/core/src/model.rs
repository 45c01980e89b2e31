//! Model description: the architecture facts every other figure is derived from, and the
//! tensor inventory (every weight tensor with its shape and role) computed from them.
//! Parameter-counting rules: see `crates/core/data/SCHEMA.md` and the comments below; each
//! catalogue entry is tested against its published total (tests/catalogue.rs).

use crate::precision::Role;
use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
}
fn default_two() -> u64 {
    2
}
fn default_dtype() -> String {
    "bf16".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MlpKind {
    /// gate + up + down (SwiGLU / GeGLU): 3·h·I weights.
    #[default]
    Gated,
    /// up + down (GELU MLP of GPT-2, OPT, Falcon, BLOOM): 2·h·I weights.
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NormKind {
    /// RMSNorm: a weight vector.
    #[default]
    Rms,
    /// LayerNorm: weight and bias.
    Layer,
}

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moe {
    pub num_experts: u64,
    pub experts_per_token: u64,
    pub expert_intermediate_size: u64,
    #[serde(default)]
    pub shared_experts: u64,
    #[serde(default)]
    pub shared_expert_intermediate_size: u64,
    #[serde(default)]
    pub shared_expert_gate: bool,
    #[serde(default)]
    pub dense_leading_layers: u64,
    #[serde(default)]
    pub layer_step: Option<u64>,
    #[serde(default)]
    pub layer_offset: u64,
    #[serde(default)]
    pub router_bias: bool,
    #[serde(default)]
    pub expert_bias: bool,
    #[serde(default)]
    pub dense_intermediate_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mla {
    pub kv_lora_rank: u64,
    #[serde(default)]
    pub q_lora_rank: u64,
    pub qk_rope_head_dim: u64,
    pub qk_nope_head_dim: u64,
    pub v_head_dim: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowPattern {
    /// Every layer local (Mistral 7B v0.1).
    All,
    /// Even layers local, odd layers global (Gemma 2, gpt-oss).
    Alternate,
    /// Layer i global when (i+1) % global_every == 0, else local (Gemma 3: 5 local to 1 global).
    GlobalEvery,
    /// Chunked local attention (Llama 4): local layers attend within chunks of `window` tokens,
    /// every `global_every`-th layer global.
    Chunked,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingWindow {
    pub window: u64,
    pub pattern: WindowPattern,
    #[serde(default)]
    pub global_every: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ssm {
    pub d_state: u64,
    pub d_conv: u64,
    pub expand: u64,
    #[serde(default)]
    pub dt_rank: u64,
    #[serde(default)]
    pub attn_layer_period: u64,
    #[serde(default)]
    pub attn_layer_offset: u64,
    #[serde(default)]
    pub dt_norms: bool,
    #[serde(default = "default_true")]
    pub conv_bias: bool,
    #[serde(default)]
    pub proj_bias: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Projector {
    #[default]
    Linear,
    Mlp2,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vision {
    pub layers: u64,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub patch_size: u64,
    pub image_size: u64,
    #[serde(default = "default_channels")]
    pub num_channels: u64,
    #[serde(default = "default_plain")]
    pub mlp: MlpKind,
    #[serde(default)]
    pub projector: Projector,
    #[serde(default)]
    pub projector_input_dim: u64,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

fn default_channels() -> u64 {
    3
}
fn default_plain() -> MlpKind {
    MlpKind::Plain
}

/// A model's architecture. Field meanings: `crates/core/data/SCHEMA.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDesc {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub family: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub base: Option<String>,
    #[serde(default)]
    pub quantization: Option<QuantSpec>,
    #[serde(default)]
    pub published_params: Option<u64>,
    #[serde(default)]
    pub published_params_source: Option<String>,
    /// The size in the model's name (7B → 7e9): only the seed articles' naive arithmetic uses it.
    #[serde(default)]
    pub nominal_params: Option<u64>,
    pub max_context: u64,
    #[serde(default = "default_dtype")]
    pub dtype: String,
    pub num_layers: u64,
    pub hidden_size: u64,
    pub num_attention_heads: u64,
    pub num_kv_heads: u64,
    pub head_dim: u64,
    pub intermediate_size: u64,
    pub vocab_size: u64,
    #[serde(default)]
    pub tie_embeddings: bool,
    #[serde(default)]
    pub mlp: MlpKind,
    #[serde(default)]
    pub norm: NormKind,
    #[serde(default = "default_two")]
    pub norms_per_layer: u64,
    #[serde(default)]
    pub qk_norm: bool,
    #[serde(default)]
    pub qkv_bias: bool,
    #[serde(default)]
    pub o_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub lm_head_bias: bool,
    #[serde(default)]
    pub learned_positions: u64,
    #[serde(default)]
    pub embedding_norm: bool,
    #[serde(default = "default_true")]
    pub final_norm: bool,
    #[serde(default)]
    pub embed_proj_dim: u64,
    #[serde(default)]
    pub extra_params: u64,
    #[serde(default)]
    pub extra_params_note: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub moe: Option<Moe>,
    #[serde(default)]
    pub mla: Option<Mla>,
    #[serde(default)]
    pub sliding_window: Option<SlidingWindow>,
    #[serde(default)]
    pub ssm: Option<Ssm>,
    #[serde(default)]
    pub vision: Option<Vision>,
    /// Weight bytes read from a model file, which replace the bytes computed from the
    /// inventory and the precision (set by the file readers, never in the catalogue).
    #[serde(skip)]
    pub measured: Option<MeasuredWeights>,
}

/// The real tensor bytes of a model file, by where they live: decoder layer i, the input side
/// (token embedding, vision tower: the first pipeline stage, and llama.cpp keeps the token
/// embedding on the CPU) and the output side (final norm and head: the last stage).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MeasuredWeights {
    pub layer_bytes: Vec<u64>,
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

/// What a layer keeps per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCache {
    /// Full attention: K and V for every token.
    Full,
    /// Local attention: K and V for at most `window` tokens.
    Window(u64),
    /// Mamba: a constant state per sequence.
    State,
}

/// How a tensor is divided under tensor parallelism (vLLM's column/row-parallel linears).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every rank holds a copy (norms, routers, MLA down-projections).
    Replicated,
    /// Output features split (column-parallel: q, gate/up, embeddings by vocabulary).
    Rows,
    /// Input features split (row-parallel: o_proj, down_proj).
    Cols,
    /// k/v projections: split by KV head, replicated when there are fewer KV heads than ranks.
    KvRows,
}

/// One weight tensor (or `count` identical ones): `rows` output features × `cols` inputs;
/// vectors have `cols == 1` and role `Small`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tensor {
    pub role: Role,
    pub rows: u64,
    pub cols: u64,
    pub count: u64,
    pub split: Split,
}

impl Tensor {
    fn matrix(role: Role, rows: u64, cols: u64, split: Split) -> Tensor {
        Tensor {
            role,
            rows,
            cols,
            count: 1,
            split,
        }
    }
    fn vector(n: u64) -> Tensor {
        Tensor {
            role: Role::Small,
            rows: n,
            cols: 1,
            count: 1,
            split: Split::Replicated,
        }
    }
    fn times(mut self, count: u64) -> Tensor {
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

/// A group of identical decoder layers.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerShape {
    pub tensors: Vec<Tensor>,
    pub cache: LayerCache,
    pub moe: bool,
}

/// Every tensor of a model, computed once from its description.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub global: Vec<(Stage, Tensor)>,
    pub shapes: Vec<LayerShape>,
    /// `layer_shape[i]` indexes `shapes` for decoder layer i.
    pub layer_shape: Vec<u16>,
    /// Parameters of routed experts that are not active for a token, summed over layers.
    pub inactive_expert_params: u64,
}

impl Inventory {
    pub fn params(&self) -> u64 {
        let global: u64 = self.global.iter().map(|(_, t)| t.elements()).sum();
        let layers: u64 = self
            .layer_shape
            .iter()
            .map(|&s| {
                self.shapes[s as usize]
                    .tensors
                    .iter()
                    .map(Tensor::elements)
                    .sum::<u64>()
            })
            .sum();
        global.saturating_add(layers)
    }

    /// Count of layers per shape index.
    pub fn shape_counts(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.shapes.len()];
        for &s in &self.layer_shape {
            counts[s as usize] += 1;
        }
        counts
    }
}

impl ModelDesc {
    fn norm_params(&self, n: u64) -> u64 {
        match self.norm {
            NormKind::Rms => n,
            NormKind::Layer => 2 * n,
        }
    }

    /// Whether decoder layer `i` uses attention (else a Mamba layer).
    pub fn is_attention_layer(&self, i: u64) -> bool {
        match &self.ssm {
            None => true,
            Some(s) => s.attn_layer_period > 0 && i % s.attn_layer_period == s.attn_layer_offset,
        }
    }

    /// Whether decoder layer `i` has a routed-expert MLP.
    pub fn is_moe_layer(&self, i: u64) -> bool {
        match &self.moe {
            None => false,
            Some(m) => {
                let step = m.layer_step.unwrap_or(1).max(1);
                i >= m.dense_leading_layers
                    && i >= m.layer_offset
                    && (i - m.layer_offset).is_multiple_of(step)
            }
        }
    }

    /// What decoder layer `i` caches per sequence.
    pub fn layer_cache(&self, i: u64) -> LayerCache {
        if !self.is_attention_layer(i) {
            return LayerCache::State;
        }
        let Some(sw) = &self.sliding_window else {
            return LayerCache::Full;
        };
        let local = match sw.pattern {
            WindowPattern::All => true,
            WindowPattern::Alternate => i.is_multiple_of(2),
            WindowPattern::GlobalEvery | WindowPattern::Chunked => {
                sw.global_every == 0 || !(i + 1).is_multiple_of(sw.global_every)
            }
        };
        if local {
            LayerCache::Window(sw.window)
        } else {
            LayerCache::Full
        }
    }

    /// Elements of K plus V cached per token in one attention layer (per full model, all heads).
    /// MLA caches one compressed latent plus the shared rope key: kv_lora_rank + qk_rope_head_dim
    /// (DeepSeek-V2 §2.1.3; vLLM MLAAttentionSpec).
    pub fn kv_elements_per_token_layer(&self) -> u64 {
        match &self.mla {
            Some(m) => m.kv_lora_rank + m.qk_rope_head_dim,
            None => 2 * self.num_kv_heads * self.head_dim,
        }
    }

    /// Mamba state elements per sequence per layer: conv state (d_conv−1)·d_inner plus SSM
    /// state d_inner·d_state (llama.cpp llama-memory-recurrent: n_embd_r, n_embd_s).
    pub fn ssm_state_elements_layer(&self) -> u64 {
        match &self.ssm {
            Some(s) => {
                let di = s.expand * self.hidden_size;
                (s.d_conv.saturating_sub(1)) * di + di * s.d_state
            }
            None => 0,
        }
    }

    fn mlp_tensors(&self, width: u64, bias: bool, role: Role, out: &mut Vec<Tensor>, count: u64) {
        let h = self.hidden_size;
        let gated = self.mlp == MlpKind::Gated;
        let up_rows = if gated { 2 * width } else { width };
        out.push(Tensor::matrix(role, up_rows, h, Split::Rows).times(count));
        out.push(Tensor::matrix(role, h, width, Split::Cols).times(count));
        if bias {
            out.push(Tensor::vector(up_rows + h).times(count));
        }
    }

    fn mlp_params(&self, width: u64, bias: bool) -> u64 {
        let mut v = Vec::new();
        self.mlp_tensors(width, bias, Role::Mlp, &mut v, 1);
        v.iter().map(Tensor::elements).sum()
    }

    fn attention_tensors(&self, out: &mut Vec<Tensor>) {
        let (h, heads, kv, d) = (
            self.hidden_size,
            self.num_attention_heads,
            self.num_kv_heads,
            self.head_dim,
        );
        let a = Role::Attention;
        if let Some(m) = &self.mla {
            let qk = m.qk_nope_head_dim + m.qk_rope_head_dim;
            if m.q_lora_rank > 0 {
                out.push(Tensor::matrix(a, m.q_lora_rank, h, Split::Replicated));
                out.push(Tensor::vector(m.q_lora_rank));
                out.push(Tensor::matrix(a, heads * qk, m.q_lora_rank, Split::Rows));
            } else {
                out.push(Tensor::matrix(a, heads * qk, h, Split::Rows));
            }
            out.push(Tensor::matrix(
                a,
                m.kv_lora_rank + m.qk_rope_head_dim,
                h,
                Split::Replicated,
            ));
            out.push(Tensor::vector(m.kv_lora_rank));
            out.push(Tensor::matrix(
                a,
                heads * (m.qk_nope_head_dim + m.v_head_dim),
                m.kv_lora_rank,
                Split::Rows,
            ));
            out.push(Tensor::matrix(a, h, heads * m.v_head_dim, Split::Cols));
        } else {
            out.push(Tensor::matrix(a, heads * d, h, Split::Rows));
            out.push(Tensor::matrix(a, kv * d, h, Split::KvRows).times(2));
            out.push(Tensor::matrix(a, h, heads * d, Split::Cols));
            if self.qkv_bias {
                out.push(Tensor::vector(heads * d + 2 * kv * d));
            }
        }
        if self.o_bias {
            out.push(Tensor::vector(h));
        }
        if self.qk_norm {
            out.push(Tensor::vector(d).times(2));
        }
    }

    fn mamba_tensors(&self, s: &Ssm, out: &mut Vec<Tensor>) {
        let h = self.hidden_size;
        let di = s.expand * h;
        let r = if s.dt_rank == 0 {
            h.div_ceil(16)
        } else {
            s.dt_rank
        };
        out.push(Tensor::matrix(Role::Ssm, 2 * di, h, Split::Rows));
        out.push(Tensor::matrix(Role::Small, di, s.d_conv, Split::Rows));
        out.push(Tensor::matrix(
            Role::Ssm,
            r + 2 * s.d_state,
            di,
            Split::Cols,
        ));
        out.push(Tensor::matrix(Role::Ssm, di, r, Split::Rows));
        out.push(Tensor::matrix(Role::Small, di, s.d_state, Split::Rows)); // A_log
        out.push(Tensor::vector(di * 2)); // D and dt_proj bias
        out.push(Tensor::matrix(Role::Ssm, h, di, Split::Cols));
        let mut small = 0;
        if s.proj_bias {
            small += 2 * di + h;
        }
        if s.conv_bias {
            small += di;
        }
        if s.dt_norms {
            small += r + 2 * s.d_state;
        }
        if small > 0 {
            out.push(Tensor::vector(small));
        }
    }

    fn layer_tensors(&self, i: u64) -> Vec<Tensor> {
        let h = self.hidden_size;
        let mut t = Vec::with_capacity(16);
        match &self.ssm {
            Some(s) if !self.is_attention_layer(i) => self.mamba_tensors(s, &mut t),
            _ => self.attention_tensors(&mut t),
        }
        if self.is_moe_layer(i) {
            let m = self.moe.as_ref().expect("moe layer implies moe");
            t.push(Tensor::matrix(
                Role::Router,
                m.num_experts,
                h,
                Split::Replicated,
            ));
            if m.router_bias {
                t.push(Tensor::vector(m.num_experts));
            }
            self.mlp_tensors(
                m.expert_intermediate_size,
                m.expert_bias,
                Role::Expert,
                &mut t,
                m.num_experts,
            );
            if m.shared_experts > 0 {
                let w = m.shared_expert_intermediate_size;
                self.mlp_tensors(w, self.mlp_bias, Role::Mlp, &mut t, m.shared_experts);
            }
            if m.shared_expert_gate {
                t.push(Tensor::matrix(Role::Router, 1, h, Split::Replicated));
            }
        } else {
            let w = self
                .moe
                .as_ref()
                .and_then(|m| m.dense_intermediate_size)
                .unwrap_or(self.intermediate_size);
            self.mlp_tensors(w, self.mlp_bias, Role::Mlp, &mut t, 1);
        }
        if self.norms_per_layer > 0 {
            t.push(Tensor::vector(self.norm_params(h)).times(self.norms_per_layer));
        }
        t
    }

    fn vision_tensors(&self, v: &Vision, out: &mut Vec<(Stage, Tensor)>) {
        let (vh, vi, p) = (v.hidden_size, v.intermediate_size, v.patch_size.max(1));
        let patches = (v.image_size / p) * (v.image_size / p);
        let vis = |r, c| {
            (
                Stage::First,
                Tensor::matrix(Role::Vision, r, c, Split::Rows),
            )
        };
        out.push(vis(vh, v.num_channels * p * p));
        out.push((Stage::First, Tensor::vector(vh + patches * vh)));
        let per_layer_mlp = match v.mlp {
            MlpKind::Plain => 2 * vh * vi,
            MlpKind::Gated => 3 * vh * vi,
        };
        out.push((
            Stage::First,
            Tensor::matrix(Role::Vision, vh, 4 * vh + per_layer_mlp / vh, Split::Rows)
                .times(v.layers),
        ));
        let bias = if v.mlp == MlpKind::Plain { vi + vh } else { 0 };
        out.push((
            Stage::First,
            Tensor::vector(4 * vh + bias + 4 * vh).times(v.layers),
        ));
        out.push((Stage::First, Tensor::vector(2 * vh)));
        let pin = if v.projector_input_dim == 0 {
            vh
        } else {
            v.projector_input_dim
        };
        let h = self.hidden_size;
        out.push(vis(h, pin));
        out.push((Stage::First, Tensor::vector(h)));
        if v.projector == Projector::Mlp2 {
            out.push(vis(h, h));
            out.push((Stage::First, Tensor::vector(h)));
        }
    }

    /// Every tensor of the model. Rules: data/SCHEMA.md and /work-notes param formula.
    pub fn inventory(&self) -> Inventory {
        let (h, v) = (self.hidden_size, self.vocab_size);
        let mut global = Vec::new();
        if self.embed_proj_dim > 0 && self.embed_proj_dim != h {
            let e = self.embed_proj_dim;
            global.push((
                Stage::First,
                Tensor::matrix(Role::Embedding, v, e, Split::Rows),
            ));
            global.push((
                Stage::First,
                Tensor::matrix(Role::Small, h, e, Split::Replicated),
            ));
            global.push((
                Stage::Last,
                Tensor::matrix(Role::Small, e, h, Split::Replicated),
            ));
        } else {
            global.push((
                Stage::First,
                Tensor::matrix(Role::Embedding, v, h, Split::Rows),
            ));
        }
        if self.learned_positions > 0 {
            global.push((
                Stage::First,
                Tensor::matrix(Role::Small, self.learned_positions, h, Split::Replicated),
            ));
        }
        if self.embedding_norm {
            global.push((Stage::First, Tensor::vector(self.norm_params(h))));
        }
        if self.final_norm {
            global.push((Stage::Last, Tensor::vector(self.norm_params(h))));
        }
        if !self.tie_embeddings {
            let cols = if self.embed_proj_dim > 0 {
                self.embed_proj_dim
            } else {
                h
            };
            global.push((
                Stage::Last,
                Tensor::matrix(Role::LmHead, v, cols, Split::Rows),
            ));
        }
        if self.lm_head_bias {
            global.push((Stage::Last, Tensor::vector(v)));
        }
        if self.extra_params > 0 {
            global.push((Stage::First, Tensor::vector(self.extra_params)));
        }
        if let Some(vis) = &self.vision {
            self.vision_tensors(vis, &mut global);
        }

        let mut shapes: Vec<LayerShape> = Vec::new();
        // Bounded even for a description that skipped `validate` (limits.rs).
        let mut layer_shape =
            Vec::with_capacity(self.num_layers.min(crate::limits::MAX_LAYERS) as usize);
        let mut inactive = 0u64;
        for i in 0..self.num_layers {
            let cache = self.layer_cache(i);
            let moe = self.is_moe_layer(i);
            let attention = self.is_attention_layer(i);
            // Layers with the same cache kind, MoE-ness and layer type have identical tensors.
            let idx = shapes.iter().position(|s| {
                s.cache == cache && s.moe == moe && (s.cache != LayerCache::State) == attention
            });
            let idx = match idx {
                Some(i) => i,
                None => {
                    shapes.push(LayerShape {
                        tensors: self.layer_tensors(i),
                        cache,
                        moe,
                    });
                    shapes.len() - 1
                }
            };
            layer_shape.push(idx as u16);
            if moe {
                let m = self.moe.as_ref().expect("moe");
                let idle = m.num_experts.saturating_sub(m.experts_per_token);
                inactive = inactive.saturating_add(
                    idle.saturating_mul(self.mlp_params(m.expert_intermediate_size, m.expert_bias)),
                );
            }
        }
        Inventory {
            global,
            shapes,
            layer_shape,
            inactive_expert_params: inactive,
        }
    }

    /// Total parameters computed from the description.
    pub fn params(&self) -> u64 {
        self.inventory().params()
    }

    /// Checks that a description is internally consistent before anything is computed from it
    /// (a pasted config.json or a file header may say anything).
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.id;
        let positive = [
            ("num_layers", self.num_layers),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab_size),
            ("max_context", self.max_context),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("model '{id}': {name} must be positive"));
            }
        }
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
        if self.mla.is_none() {
            if self.num_kv_heads == 0 || self.num_kv_heads > self.num_attention_heads {
                return Err(format!(
                    "model '{id}': num_kv_heads = {} must be between 1 and num_attention_heads = {}",
                    self.num_kv_heads, self.num_attention_heads
                ));
            }
            if !self.num_attention_heads.is_multiple_of(self.num_kv_heads) {
                return Err(format!(
                    "model '{id}': num_attention_heads ({}) must be a multiple of num_kv_heads ({})",
                    self.num_attention_heads, self.num_kv_heads
                ));
            }
        }
        if let Some(m) = &self.moe {
            if m.num_experts == 0
                || m.experts_per_token == 0
                || m.experts_per_token > m.num_experts
                || m.num_experts > crate::limits::MAX_EXPERTS
            {
                return Err(format!(
                    "model '{id}': MoE needs 1 <= experts_per_token ({}) <= num_experts ({}) <= {}",
                    m.experts_per_token,
                    m.num_experts,
                    crate::limits::MAX_EXPERTS
                ));
            }
        }
        if let Some(sw) = &self.sliding_window {
            if sw.window == 0 {
                return Err(format!(
                    "model '{id}': sliding_window.window must be positive"
                ));
            }
        }
        if let Some(s) = &self.ssm {
            if s.expand == 0 || s.expand > 16 || s.d_state > 1 << 16 || s.d_conv > 1 << 10 {
                return Err(format!(
                    "model '{id}': ssm expand/d_state/d_conv out of range"
                ));
            }
        }
        Ok(())
    }

    /// Parameters used per token: routed experts count only `experts_per_token`.
    pub fn active_params(&self) -> u64 {
        let inv = self.inventory();
        inv.params().saturating_sub(inv.inactive_expert_params)
    }

    /// The released dtype's bytes per element: "bf16" → 2.
    pub fn dtype_bytes(&self) -> u64 {
        match self.dtype.to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => 4,
            _ => 2,
        }
    }
}
