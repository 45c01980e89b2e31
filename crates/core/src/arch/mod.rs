//! The config.json mapping: a Hugging Face `config.json` (as a JSON value) → the model
//! description. Pure (no I/O). It is the only way a model becomes a description: the catalogue's
//! stored config.json files, a config.json or checkpoint on disk, a GGUF header (its keys
//! translated to config.json keys by [`gguf`]), a config pasted into the web page and the Hub all
//! go through [`describe`].
//!
//! The rules follow transformers 5.24.0 (the configuration classes' defaults and derivations, the
//! modeling files' tensors, the cache's shapes); each family's own traits are data
//! (`data/transformers/architectures.toml`). What the mapping does not understand and that can
//! change memory is refused in one line naming the field, or warned about in `warnings`.

pub mod classes;
mod compressed;
mod expr;
pub mod family;
pub mod fields;
pub mod gguf;
mod inkling;
mod layers;
mod pattern;
mod quant;
mod recurrent;
mod reuse;
mod shared;
mod special;
mod towers;

use crate::layer::Layer;
use crate::model::{Inventory, ModelDesc, NormKind, Role, Split, Stage, Tensor};
#[allow(unused_imports)]
use crate::precision as _precision;
use family::Family;
use fields::Scope;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// The bounds the mapping checks every field against before anything is allocated per layer,
/// per expert or per token of the vocabulary: the crate's one table of limits.
pub use crate::limits;

/// `torch_dtype` values a checkpoint's weights are sized from (torch dtype names as transformers
/// writes them, `str(torch.bfloat16)` without the `torch.` prefix, plus the short names some
/// writers use).
pub const KNOWN_TORCH_DTYPES: &[&str] = &[
    "bfloat16", "float16", "float32", "bf16", "fp16", "fp32", "half", "float",
];

/// Why a config could not be described: one line, naming the field when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchError {
    /// The field at fault, as a path in the file (`text_config.layer_types`).
    pub field: Option<String>,
    pub message: String,
}

impl ArchError {
    pub fn field(field: &str, message: impl Into<String>) -> ArchError {
        ArchError {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }
    pub fn model(message: impl Into<String>) -> ArchError {
        ArchError {
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ArchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ArchError {}

/// Keys under which multimodal configs nest their language model.
const TEXT_KEYS: &[&str] = &[
    "text_config",
    "llm_config",
    "language_config",
    "text_model_config",
    // BLT's global transformer over byte patches.
    "global_config",
];

/// Encoder-decoder and encoder-only model types, refused with their reason (transformers lists
/// their decoders under causal-LM classes, but they are not served as decoders). Families with
/// their own refusal reason in architectures.toml add to these.
fn encoder_reason(model_type: &str, root: &Map<String, Value>) -> Option<String> {
    if root.get("is_encoder_decoder") == Some(&Value::Bool(true)) {
        return Some(format!(
            "{model_type} is an encoder-decoder model (is_encoder_decoder: true): not served as a decoder"
        ));
    }
    None
}

/// The description of a config.json. The identity fields (`id`, `aliases`, `source`...) are
/// left for the caller; `warnings` says what was assumed.
pub fn describe(config: &Value) -> Result<ModelDesc, ArchError> {
    let Value::Object(root) = config else {
        return Err(ArchError::field(
            "(top level)",
            format!(
                "config.json is {}, expected a JSON object",
                fields::describe_value(config)
            ),
        ));
    };
    let top = Scope::new(root, "", None);
    let top_type = top.string(&["model_type"])?.unwrap_or_default();
    if let Some(reason) = encoder_reason(&top_type, root) {
        return Err(ArchError::field("is_encoder_decoder", reason));
    }
    if let Some(reason) = family::family(&top_type).and_then(|f| f.refuse.clone()) {
        return Err(ArchError::field(
            "model_type",
            format!("{top_type} {reason}"),
        ));
    }

    // The language model's own object: a nested text config, or the top level itself.
    let empty = empty_map();
    let mut text_scope = None;
    for key in TEXT_KEYS {
        if let Some(s) = top.nested(key)? {
            text_scope = Some(s);
            break;
        }
    }
    // A vision-language-action model whose language model sits in a nested VLM config
    // (pi0: vlm_config.text_config, modeling_pi0.py PI0Model.vlm).
    if text_scope.is_none() {
        if let Some(vlm) = top.nested("vlm_config")? {
            text_scope = vlm.nested("text_config")?;
        }
    }
    let text_sub = top.class.and_then(|c| c.sub_config("text_config"));
    if text_scope.is_none() {
        if let Some(sub) = text_sub {
            text_scope = Some(
                if top.has(&["num_hidden_layers", "n_layer", "num_layers"]) {
                    // A legacy composite config with the text fields at the top level (Qwen2.5-VL):
                    // read them with the text class's defaults.
                    Scope::with_class(root, "", sub)
                } else {
                    // A composite config whose text_config was left at its class default.
                    Scope::new(empty, "text_config.", Some(sub))
                },
            );
        }
    }
    let text = text_scope.unwrap_or_else(|| Scope::new(root, "", Some(&top_type)));
    let text_type = text.model_type().unwrap_or(&top_type).to_string();
    let fam = family::family(&text_type)
        .or_else(|| family::family(&top_type))
        .cloned();
    if let Some(reason) = fam.as_ref().and_then(|f| f.refuse.clone()) {
        return Err(ArchError::field(
            &text.field("model_type"),
            format!("{text_type}: {reason}"),
        ));
    }
    let mut warnings = Vec::new();
    let known = fam.is_some();
    let mut fam = fam.unwrap_or_default();
    let text = match &fam.flatten {
        Some(names) => text.flatten(names),
        None => text,
    };
    special::adjust(&text_type, &text, &mut fam)?;
    if let Some(w) = &fam.warning {
        warnings.push(w.clone());
    }
    if !known {
        warnings.push(format!(
            "model_type '{}' is not among the architectures vramplan describes; sized as a Llama-style decoder from its standard fields (transformers {})",
            if text_type.is_empty() { "(none)" } else { &text_type },
            classes::transformers_version()
        ));
    }

    let b = Builder {
        top: &top,
        text: &text,
        fam: &fam,
        model_type: text_type.clone(),
    };
    let basics = b.basics(&mut warnings)?;
    let plans = pattern::plans(&b, &basics, &mut warnings)?;

    // Layers: one description per distinct plan.
    let mut kinds: Vec<Layer> = Vec::new();
    let mut index: HashMap<layers::Plan, u16> = HashMap::new();
    let mut layer_kind = Vec::with_capacity(plans.len());
    let mut inactive = 0u64;
    for p in &plans {
        let k = match index.get(p) {
            Some(&k) => k,
            None => {
                let layer = layers::build(&b, &basics, p)?;
                kinds.push(layer);
                let k = u16::try_from(kinds.len() - 1).map_err(|_| {
                    ArchError::model("more than 65,535 distinct layer kinds".to_string())
                })?;
                index.insert(p.clone(), k);
                k
            }
        };
        inactive = inactive.saturating_add(kinds[k as usize].inactive_params);
        layer_kind.push(k);
    }

    let mut global = b.globals(&basics)?;
    let towers = towers::towers(&b, &basics, &mut global, &mut warnings)?;
    let mtp = layers::mtp(&b, &basics, &kinds, &layer_kind)?;
    let unused_state = unused_state(&b, &basics, &kinds);
    let quantization = quant::quant_spec(&top, &text, &mut warnings)?;

    let mut desc = ModelDesc {
        id: String::new(),
        aliases: Vec::new(),
        family: String::new(),
        source: String::new(),
        base: None,
        quantization,
        published_params: None,
        published_params_source: None,
        nominal_params: None,
        model_type: text_type,
        top_model_type: top_type,
        max_context: basics.max_context,
        dtype: basics.dtype.clone(),
        num_layers: basics.layers,
        hidden_size: basics.hidden,
        vocab_size: basics.vocab,
        tie_embeddings: basics.tie,
        num_attention_heads: basics.heads.get(0),
        num_kv_heads: basics.kv_heads.get(0),
        head_dim: basics.head_dim,
        intermediate_size: basics.intermediate.get(0),
        mlp: Default::default(),
        norm: basics.norm,
        moe: None,
        mla: None,
        inventory: Inventory {
            global,
            kinds,
            layer_kind,
            inactive_expert_params: inactive,
        },
        towers,
        mtp,
        warnings,
        measured: None,
        unused_state,
    };
    desc.summarise();
    kind_warnings(&mut desc);
    unread::check(&b, known, &mut desc.warnings)?;
    desc.validate().map_err(ArchError::model)?;
    Ok(desc)
}

/// The recurrent mixer a hybrid family's config describes when none of its layers is recurrent
/// (granite-4.0-micro: GraniteMoeHybrid with 40 "attention" layer_types; its Mamba-2 keys, or
/// GraniteMoeHybridConfig's defaults, still describe a state). None when some layer keeps a
/// state, the family has no recurrent mixer, or the config cannot describe one.
fn unused_state(
    b: &Builder,
    basics: &Basics,
    kinds: &[Layer],
) -> Option<crate::model::UnusedState> {
    if kinds.iter().any(|k| k.recurrent.is_some()) {
        return None;
    }
    let kind = recurrent::RecKind::of_family(b).ok()??;
    let state = recurrent::build(b, basics, kind, &mut Vec::new()).ok()?;
    let layer_types_all_attention = match b.text.strings(&["layer_types"]) {
        Ok(Some((_, types))) => !types.is_empty() && types.iter().all(|t| t == "attention"),
        _ => false,
    };
    Some(crate::model::UnusedState {
        state,
        layer_types_all_attention,
    })
}

/// What the KV figures of some layer kinds leave out or approximate, said in `warnings`:
/// cross-attention layers that cache the image tokens' K and V (Mllama, BLIP, TrOCR) hold, per
/// sequence, an amount set by its images rather than its context; reference sliding windows
/// are counted as full attention; a speculative-decoding assistant keeps no cache of its own.
fn kind_warnings(desc: &mut ModelDesc) {
    let (mut cross_layers, mut per_token) = (0u64, 0u64);
    let mut prefill = Vec::new();
    let mut reads_target = false;
    for l in desc.layers() {
        if let Some(c) = l.cross.filter(|c| c.cached) {
            cross_layers += 1;
            per_token = per_token.saturating_add(c.elements_per_encoder_token());
        }
        if let Some(a) = &l.attention {
            if let crate::layer::Span::PrefillWindow(w) = a.span {
                prefill.push(w);
            }
            reads_target |= a.kv_source == Some(crate::layer::TARGET_MODEL_CACHE);
        }
    }
    if cross_layers > 0 {
        desc.warnings.push(format!(
            "{cross_layers} cross-attention layers also cache the K and V of every image token a sequence holds ({per_token} elements, {} bytes in {}, per image token): not in the KV figures, which count text tokens",
            per_token.saturating_mul(desc.dtype_bytes()),
            desc.dtype
        ));
    }
    if let Some(w) = prefill.first() {
        desc.warnings.push(format!(
            "{} reference sliding-window layers keep every prompt token and the last {w} generated ones: their cache is counted as full attention, exact when the context is all prompt",
            prefill.len()
        ));
    }
    if reads_target {
        desc.warnings.push(
            "every attention layer reads its target model's K/V cache (a speculative-decoding assistant): it keeps no cache of its own; size the target model's".into(),
        );
    }
}

pub(crate) fn empty_map() -> &'static Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Map::new)
}

/// The model-wide figures every layer is built from.
#[derive(Debug, Clone)]
pub(crate) struct Basics {
    pub layers: u64,
    pub hidden: u64,
    pub heads: fields::PerLayer,
    pub kv_heads: fields::PerLayer,
    pub head_dim: u64,
    pub v_head_dim: u64,
    pub intermediate: fields::PerLayer,
    pub vocab: u64,
    pub max_context: u64,
    pub dtype: String,
    pub tie: bool,
    pub norm: NormKind,
    /// Elements of one norm's parameters over `hidden` (RMSNorm: hidden; LayerNorm: 2 × hidden).
    pub norm_bias: bool,
    pub no_norm: bool,
}

/// Reads the config for the mapping's parts.
pub(crate) struct Builder<'a> {
    pub top: &'a Scope<'a>,
    pub text: &'a Scope<'a>,
    pub fam: &'a Family,
    pub model_type: String,
}

/// A field against its bound (limits.rs), refused in the readers' words ("field 'x' is N, above
/// the limit of M") before anything is sized by it.
fn check_limit(field: &str, value: u64, max: u64) -> Result<u64, ArchError> {
    if value > max {
        return Err(ArchError::field(
            field,
            format!("field '{field}' is {value}, above the limit of {max}"),
        ));
    }
    Ok(value)
}

impl Builder<'_> {
    /// A family toggle: fixed, or read from its config key (absent = false).
    pub fn toggle(&self, t: &Option<family::Toggle>, default_key: &str) -> Result<bool, ArchError> {
        match t {
            Some(family::Toggle::Fixed(b)) => Ok(*b),
            Some(family::Toggle::Key(k)) => self.text.flag(&[k.as_str()]),
            None => self.text.flag(&[default_key]),
        }
    }

    fn basics(&self, warnings: &mut Vec<String>) -> Result<Basics, ArchError> {
        let t = self.text;
        let layers_field = t.field("num_hidden_layers");
        let pattern_len = if self.fam.layers_from_pattern == Some(true) {
            match t.find(&["layer_types", "layers_block_type"]) {
                Some(f) => f.value.as_array().map(|a| a.len() as u64),
                None => t
                    .string(&["hybrid_override_pattern"])?
                    .map(|p| p.chars().count() as u64),
            }
        } else {
            None
        };
        let layers = check_limit(
            &layers_field,
            match pattern_len {
                Some(n) => n,
                None => t.req_u64(&["num_hidden_layers", "n_layer", "n_layers", "num_layers"])?,
            },
            limits::MAX_LAYERS,
        )?;
        let hidden = check_limit(
            &t.field("hidden_size"),
            t.req_u64(&["hidden_size", "n_embd", "d_model", "dim", "embed_dim"])?,
            limits::MAX_HIDDEN_SIZE,
        )?;
        let heads = match t.per_layer(&[
            "num_attention_heads",
            "n_head",
            "n_heads",
            "num_heads",
            "num_query_heads",
        ])? {
            Some((_, h)) => h,
            None => fields::PerLayer::One(0),
        };
        let heads_max = per_layer_max(&heads, layers);
        check_limit(
            &t.field("num_attention_heads"),
            heads_max,
            limits::MAX_ATTENTION_HEADS,
        )?;
        let mut kv_heads = match t.per_layer(&[
            "num_key_value_heads",
            "num_kv_heads",
            "n_head_kv",
            "multi_query_group_num",
            "n_kv_heads",
            "num_query_groups",
            "kv_n_heads",
        ])? {
            Some((_, k)) => k,
            // transformers: num_key_value_heads defaults to num_attention_heads.
            None => heads.clone(),
        };
        if let Some(key) = &self.fam.multi_query_key {
            if t.flag(&[key.as_str()])? {
                kv_heads = fields::PerLayer::One(1);
            }
        }
        let h0 = heads.get(0);
        let k0 = kv_heads.get(0);
        if h0 > 0 && (k0 == 0 || k0 > h0 || !h0.is_multiple_of(k0)) && !t.has(&["kv_lora_rank"]) {
            let field = t.field("num_key_value_heads");
            return Err(ArchError::field(
                &field,
                format!("{field} = {k0} must divide num_attention_heads = {h0}"),
            ));
        }
        let head_dim =
            match t.u64(&["head_dim", "kv_channels", "attention_head_dim", "head_size"])? {
                Some(d) if d > 0 => d,
                _ => hidden.checked_div(h0).unwrap_or(0),
            };
        check_limit(&t.field("head_dim"), head_dim, limits::MAX_HEAD_DIM)?;
        let v_head_dim = t
            .u64(&["v_head_dim", "value_head_dim"])?
            .filter(|&v| v > 0 && !t.has(&["kv_lora_rank"]))
            .unwrap_or(head_dim);
        // A family formula wins over the config's width keys: it says how the modeling file
        // derives the MLP width from them (Moshi's fc1 of ffn_dim rows is gate and up).
        let from_formula = match &self.fam.intermediate_formula {
            Some(f) if self.fam.intermediate_override.is_none() => {
                let names = |n: &str| -> Result<u64, ArchError> {
                    match n {
                        "h" => Ok(hidden),
                        key => t.u64(&[key])?.ok_or_else(|| {
                            ArchError::field(
                                &t.field(key),
                                format!("missing required field '{}'", t.field(key)),
                            )
                        }),
                    }
                };
                Some(expr::eval(f, &names)?)
            }
            _ => None,
        };
        let intermediate = match (
            self.fam.intermediate_override.or(from_formula),
            t.per_layer(&[
                "intermediate_size",
                "ffn_dim",
                "n_inner",
                "ffn_hidden_size",
                "d_ff",
                "feed_forward_size",
                "dff",
            ])?,
        ) {
            (Some(w), _) => fields::PerLayer::One(w),
            (None, Some((_, w))) => w,
            (None, None) => match self.fam.intermediate_default.as_deref() {
                Some("4h") => fields::PerLayer::One(4 * hidden),
                _ => fields::PerLayer::One(0),
            },
        };
        check_limit(
            &t.field("intermediate_size"),
            per_layer_max(&intermediate, layers),
            limits::MAX_INTERMEDIATE_SIZE,
        )?;
        let vocab = match t
            .u64(&["vocab_size", "padded_vocab_size", "n_vocab"])?
            .or(self.top.u64(&["vocab_size"])?)
        {
            Some(v) if v > 0 => check_limit(&t.field("vocab_size"), v, limits::MAX_VOCAB_SIZE)?,
            _ => {
                let field = t.field("vocab_size");
                return Err(ArchError::field(
                    &field,
                    format!("missing required field '{field}' (the config's class has no default for it)"),
                ));
            }
        };
        let context_names = [
            "max_position_embeddings",
            "n_positions",
            "max_seq_len",
            "seq_length",
            "max_sequence_length",
            "n_ctx",
            "context_length",
            "max_seq_length",
        ];
        let max_context = match t.u64(&context_names)?.or(self.top.u64(&context_names)?) {
            Some(c) if c > 0 => {
                check_limit(&t.field("max_position_embeddings"), c, limits::MAX_CONTEXT)?
            }
            // Without positions of their own (ALiBi, recurrent models) a context limit is not
            // part of the architecture; with rotary ones it must be stated.
            _ if self.fam.positions.as_deref() == Some("none")
                || self.fam.unbounded_context == Some(true) =>
            {
                warnings.push(
                    "the config gives no context length (max_position_embeddings); the model's own limit is taken as 1,048,576 tokens".into(),
                );
                1 << 20
            }
            _ => {
                let field = t.field("max_position_embeddings");
                return Err(ArchError::field(
                    &field,
                    format!("missing required field '{field}' (the context length; the config's class has no default for it)"),
                ));
            }
        };
        let dtype_text = match self.top.string(&["torch_dtype", "dtype"])? {
            Some(d) => Some(d),
            None => t.string(&["torch_dtype", "dtype"])?,
        };
        // Only a dtype weights are sized from; anything else (float64, float8_e4m3fn, a typo)
        // is refused naming the field rather than read as bf16.
        let dtype_lower = dtype_text.as_deref().map(|d| {
            let d = d.to_ascii_lowercase();
            d.strip_prefix("torch.").map(str::to_string).unwrap_or(d)
        });
        if let Some(d) = &dtype_lower {
            if !KNOWN_TORCH_DTYPES.contains(&d.as_str()) {
                let scope = if self.top.string(&["torch_dtype", "dtype"])?.is_some() {
                    self.top
                } else {
                    t
                };
                let f = scope
                    .find(&["torch_dtype", "dtype"])
                    .expect("a dtype was read from this scope");
                return Err(scope.wrong(
                    &f,
                    &format!("one of {}", KNOWN_TORCH_DTYPES[..3].join(", ")),
                ));
            }
        }
        let dtype = match dtype_lower.as_deref() {
            Some("float16") | Some("fp16") | Some("half") => "fp16",
            Some("float32") | Some("fp32") | Some("float") => "fp32",
            _ => "bf16",
        }
        .to_string();
        // tie_word_embeddings: the top-level config's (the model class that ties reads its own
        // config: modeling_utils.py `get_expanded_tied_weights_keys`), else the text config's.
        let tie = match self.top.bool(&["tie_word_embeddings"])? {
            Some(b) => b,
            None => t.flag(&["tie_word_embeddings", "tie_embeddings"])?,
        } && self.fam.untied_head != Some(true);
        let (norm, norm_bias, no_norm) = match self.fam.norm.as_deref() {
            None | Some("rms") => (NormKind::Rms, false, false),
            Some("layer") => (NormKind::Layer, true, false),
            Some("layer_nobias") => (NormKind::Layer, false, false),
            Some("none") => (NormKind::Rms, false, true),
            Some(other) => {
                return Err(ArchError::model(format!(
                    "architectures.toml: unknown norm '{other}' for {}",
                    self.model_type
                )))
            }
        };
        Ok(Basics {
            layers,
            hidden,
            heads,
            kv_heads,
            head_dim,
            v_head_dim,
            intermediate,
            vocab,
            max_context,
            dtype,
            tie,
            norm,
            norm_bias,
            no_norm,
        })
    }

    /// A family formula's value (`expr.rs`): the mapping's names, then integer config keys.
    pub fn formula(
        &self,
        text: &str,
        basics: &Basics,
        plan: Option<&layers::Plan>,
    ) -> Result<u64, ArchError> {
        let name = |n: &str| -> Result<u64, ArchError> {
            Ok(match (n, plan) {
                ("h", _) => basics.hidden,
                ("v", _) => basics.vocab,
                ("layers", _) => basics.layers,
                ("heads", Some(p)) => p.heads,
                ("heads", None) => basics.heads.get(0),
                ("kv", Some(p)) => p.kv_heads,
                ("kv", None) => basics.kv_heads.get(0),
                ("d", Some(p)) => p.head_dim,
                ("d", None) => basics.head_dim,
                ("dv", Some(p)) => p.v_head_dim,
                ("dv", None) => basics.v_head_dim,
                ("i", _) => basics.intermediate.get(0),
                // 1 on a layer with routed experts, else 0.
                ("moe", Some(p)) => u64::from(p.ffn == layers::FfnPlan::Moe),
                // 1 on a layer with a sparse-attention indexer, else 0.
                ("indexed", Some(p)) => u64::from(matches!(
                    p.mixer,
                    layers::Mixer::Attention { indexed: true, .. }
                )),
                // 1 on the first layer of a family whose first layer differs, else 0.
                ("first", Some(p)) => u64::from(p.first_layer),
                // 1 on a layer of a section run several times (reuse.rs), else 0.
                ("looped", Some(p)) => u64::from(p.in_loop),
                // 1 on a layer with (self-)attention, else 0.
                ("attn", Some(p)) => u64::from(matches!(
                    p.mixer,
                    layers::Mixer::Attention { .. } | layers::Mixer::Hybrid(..)
                )),
                (key, _) => self
                    .text
                    .formula_value(key)?
                    .map_or_else(|| self.top.formula_value(key), |v| Ok(Some(v)))?
                    .ok_or_else(|| {
                        ArchError::field(
                            &self.text.field(key),
                            format!(
                                "missing required field '{}' (used by the {} family's formula)",
                                self.text.field(key),
                                self.model_type
                            ),
                        )
                    })?,
            })
        };
        expr::eval(text, &name)
    }

    /// Parameters of one norm over `n` features.
    pub fn norm_params(&self, basics: &Basics, n: u64) -> u64 {
        if basics.no_norm {
            0
        } else if basics.norm_bias {
            2 * n
        } else {
            n
        }
    }

    /// Embeddings, positions, final norm, head.
    fn globals(&self, basics: &Basics) -> Result<Vec<(Stage, Tensor)>, ArchError> {
        let (h, v) = (basics.hidden, basics.vocab);
        // OPT-350m: embeddings of word_embed_proj_dim, projected in and out of hidden_size.
        let e = match &self.fam.embed_dim_key {
            Some(k) => self.text.u64(&[k.as_str()])?.unwrap_or(h),
            None => h,
        };
        // A text model without embeddings or head of its own (BLT's global transformer: the
        // byte embeddings and head are the local encoder's and decoder's, counted as towers).
        if self.fam.no_embeddings == Some(true) {
            return Ok(Vec::new());
        }
        let mut g = vec![(
            Stage::First,
            Tensor::matrix(Role::Embedding, v, e, Split::Rows),
        )];
        if e != h {
            g.push((
                Stage::First,
                Tensor::matrix(Role::Small, h, e, Split::Replicated),
            ));
            g.push((
                Stage::Last,
                Tensor::matrix(Role::Small, e, h, Split::Replicated),
            ));
        }
        if self.fam.positions.as_deref() == Some("learned") {
            let rows = basics
                .max_context
                .saturating_add(self.fam.positions_offset.unwrap_or(0));
            g.push((
                Stage::First,
                Tensor::matrix(Role::Small, rows, h, Split::Replicated),
            ));
        }
        if self.fam.embedding_norm == Some(true) {
            g.push((Stage::First, Tensor::vector(self.norm_params(basics, h))));
        }
        if self.fam.final_norm != Some(false) && !basics.no_norm {
            g.push((Stage::Last, Tensor::vector(self.norm_params(basics, h))));
        }
        if !basics.tie {
            // The head's own vocabulary when the family gives it one (Inkling 2's
            // unpadded_vocab_size against a padded embedding table).
            let head_rows = match &self.fam.head_vocab_key {
                Some(k) => self.text.u64(&[k.as_str()])?.unwrap_or(v),
                None => v,
            };
            g.push((
                Stage::Last,
                Tensor::matrix(Role::LmHead, head_rows, e, Split::Rows),
            ));
        }
        if self.toggle(&self.fam.lm_head_bias, "lm_head_bias")? {
            g.push((Stage::Last, Tensor::vector(v)));
        }
        if let Some(f) = &self.fam.global_extra {
            let n = self.formula(f, basics, None)?;
            if n > 0 {
                g.push((Stage::First, Tensor::vector(n)));
            }
        }
        Ok(g)
    }
}

fn per_layer_max(p: &fields::PerLayer, layers: u64) -> u64 {
    match p {
        fields::PerLayer::One(v) => *v,
        fields::PerLayer::List(vs) => vs.iter().take(layers as usize).copied().max().unwrap_or(0),
    }
}

mod unread {
    //! Keys of the file the mapping did not read, checked for ones that can change memory.
    use super::{ArchError, Builder};

    /// Key fragments that name a layer pattern, a mixer or a cache-sharing rule: a key with one
    /// of them that the mapping did not read would change how layers are described.
    const MEMORY_FRAGMENTS: &[&str] = &[
        "layer_types",
        "block_type",
        "pattern",
        "layer_ids",
        "layer_indices",
        "attn_layer",
        "attention_layer",
        "full_attn",
        "kv_shar",
        "shared_kv",
        "kv_source",
        "num_kv_shared",
        "mamba",
        "ssm",
        "linear_attn",
        "mixer",
        "window",
        "chunk_size",
        "expert",
        "moe",
        "lora_rank",
        "head_dim",
    ];

    /// Keys that contain one of the fragments above but never change memory.
    const HARMLESS: &[&str] = &[
        "qk_head_dim",
        "moe_shared_expert_overlap",
        "mtp_layers_block_type",
        "output_router_logits",
        "router_aux_loss_coef",
        "moe_aux_loss_coeff",
        "chunk_size_feed_forward",
        "norm_topk_prob",
        "moe_renormalize",
        "moe_norm_min",
        "moe_router_enable_expert_bias",
        "expert_selection_fn",
        "num_expert_group",
        "use_mamba_kernels",
        "mamba_chunk_size",
        "chunk_size",
        "time_step_limit",
        "activation_sparsity_pattern",
        "mamba_dt_min",
        "mamba_dt_max",
        "mamba_dt_init_floor",
    ];

    /// For a model_type the mapping has no family for, an unread key that names a layer
    /// pattern, a mixer or a cache rule means an unknown structure: refused, naming the field.
    /// For a known family it is reported in `warnings`.
    pub fn check(b: &Builder, known: bool, warnings: &mut Vec<String>) -> Result<(), ArchError> {
        let used = b.text.used();
        let mut unread = Vec::new();
        let ignored = b.fam.ignored.clone().unwrap_or_default();
        for key in b.text.obj.keys() {
            if used.contains(key) || HARMLESS.contains(&key.as_str()) || ignored.contains(key) {
                continue;
            }
            let k = key.to_ascii_lowercase();
            // Activations, scalings and runtime switches never change memory.
            if [
                "_act",
                "scal",
                "multiplier",
                "temperature",
                "softcap",
                "_eps",
                "dropout",
                "aux_loss",
                "jitter",
                "init",
                "fp32",
            ]
            .iter()
            .any(|f| k.contains(f))
            {
                continue;
            }
            if MEMORY_FRAGMENTS.iter().any(|f| k.contains(f)) {
                let v = &b.text.obj[key];
                // Null, false, 0 and empty lists switch nothing on.
                let off = v.is_null()
                    || v == &serde_json::Value::Bool(false)
                    || v.as_u64() == Some(0)
                    || v.as_array().is_some_and(Vec::is_empty);
                if !off {
                    unread.push(b.text.field(key));
                }
            }
        }
        if let (false, Some(first)) = (known, unread.first()) {
            return Err(ArchError::field(
                first,
                format!(
                    "{first} is not understood for model_type '{}', which vramplan does not describe: it may change the layers or their caches, so no estimate is given",
                    b.model_type
                ),
            ));
        }
        if !unread.is_empty() {
            warnings.push(format!(
                "fields not understood by the mapping, which may change memory: {}",
                unread.join(", ")
            ));
        }
        Ok(())
    }
}
