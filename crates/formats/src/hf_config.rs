//! Hugging Face `config.json` → the plain fields the estimator needs.
//!
//! Config files differ per model family: the same quantity has several names (`n_layer`,
//! `num_layers`, ...), vision-language models nest the language model under `text_config`
//! (Llama 4, Gemma 3, Mistral 3; `llm_config`/`language_config` elsewhere), and MoE / MLA /
//! sliding-window / quantization fields come and go. We read the JSON as a tree and pick fields
//! by name, rather than with one serde struct, so that a wrong-typed field is reported by its
//! exact path and an unknown extra field is simply ignored.
//!
//! Required: the layer count and hidden size (every decoder config has them under some name).
//! Everything else is optional here because transformers fills class defaults for fields a
//! config may omit (Gemma 3's text_config omits its head counts); the converter to the core
//! model description reports what it still lacks.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{one_line, show_path, FormatError};

/// config.json files are a few KiB (the largest, with long label maps, under 1 MiB); refuse
/// anything absurd before reading it. The parsed tree of a JSON text can take ~16× its size
/// (a list of one-digit numbers), so this cap also bounds the tree: 4 MiB → 64 MiB.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Lists we keep from a config that are not per layer (architectures, modules_to_not_convert)
/// are capped at this length.
pub const MAX_LIST_LEN: usize = 65_536;
/// Per-layer lists (layer_types, per-layer head counts and widths) hold one entry per layer.
pub const MAX_PER_LAYER_LEN: usize = vramplan_core::limits::MAX_PER_LAYER_ENTRIES as usize;
/// `torch_dtype` values a checkpoint's weights are sized from (torch dtype names as
/// transformers writes them, `str(torch.bfloat16)` without the `torch.` prefix, plus the short
/// names some writers use). Anything else (float64, float8_e4m3fn, a typo) is refused rather than
/// read as bf16.
pub const KNOWN_TORCH_DTYPES: &[&str] = &[
    "bfloat16", "float16", "float32", "bf16", "fp16", "fp32", "half", "float",
];
/// Widest quantized weight a `quantization_config.bits` may name: 1-bit (BitNet) to 16-bit
/// (compressed-tensors' unquantized groups); 32 leaves room and stays a plain integer width.
pub const MAX_QUANT_BITS: u64 = 32;
/// Largest quantization group (`group_size`): a group lies within one row, so at most the
/// widest row (`MAX_INTERMEDIATE_SIZE`); -1 means one group per output channel (GPTQ).
pub const MAX_QUANT_GROUP: i64 = vramplan_core::limits::MAX_INTERMEDIATE_SIZE as i64;

/// A per-model quantity that is either the same for every layer or given per layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PerLayer {
    Uniform(u64),
    Layers(Vec<u64>),
}

impl PerLayer {
    /// A list whose entries are all equal collapses to `Uniform`.
    pub fn from_vec(values: Vec<u64>) -> PerLayer {
        match values.first() {
            Some(&first) if values.iter().all(|&v| v == first) => PerLayer::Uniform(first),
            _ => PerLayer::Layers(values),
        }
    }

    /// The value for layer `layer` (a short list repeats its last value, as no list should be
    /// short; `None` only for an empty list).
    pub fn get(&self, layer: usize) -> Option<u64> {
        match self {
            PerLayer::Uniform(v) => Some(*v),
            PerLayer::Layers(vs) => vs.get(layer).or(vs.last()).copied(),
        }
    }

    pub fn max(&self) -> Option<u64> {
        match self {
            PerLayer::Uniform(v) => Some(*v),
            PerLayer::Layers(vs) => vs.iter().copied().max(),
        }
    }

    pub fn uniform(&self) -> Option<u64> {
        match self {
            PerLayer::Uniform(v) => Some(*v),
            PerLayer::Layers(_) => None,
        }
    }
}

/// Mixture-of-experts fields, under their common names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MoeConfig {
    /// num_local_experts | num_experts | n_routed_experts | moe_num_experts
    pub num_experts: u64,
    /// num_experts_per_tok | experts_per_token | num_experts_per_token | moe_top_k
    pub num_experts_per_tok: Option<u64>,
    /// n_shared_experts | num_shared_experts
    pub num_shared_experts: Option<u64>,
    /// moe_intermediate_size | expert_intermediate_size (per routed expert)
    pub moe_intermediate_size: Option<u64>,
    /// shared_expert_intermediate_size (Qwen-MoE)
    pub shared_expert_intermediate_size: Option<u64>,
    /// first_k_dense_replace (DeepSeek): leading dense layers
    pub first_k_dense_replace: Option<u64>,
    /// interleave_moe_layer_step | decoder_sparse_step | moe_layer_freq | expert_layer_period
    pub moe_layer_step: Option<u64>,
    /// expert_layer_offset (Jamba)
    pub moe_layer_offset: Option<u64>,
    /// intermediate_size_mlp (Llama 4: the MLP width on dense layers)
    pub dense_intermediate_size: Option<u64>,
}

/// DeepSeek multi-head latent attention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MlaConfig {
    pub kv_lora_rank: u64,
    pub q_lora_rank: Option<u64>,
    pub qk_rope_head_dim: Option<u64>,
    pub qk_nope_head_dim: Option<u64>,
    pub v_head_dim: Option<u64>,
}

/// `quantization_config` of a pre-quantized checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QuantizationConfig {
    /// awq | gptq | fp8 | compressed-tensors | bitsandbytes | mxfp4 | ...
    pub quant_method: Option<String>,
    /// bits | w_bit | (compressed-tensors) config_groups.*.weights.num_bits
    pub bits: Option<u64>,
    /// group_size | q_group_size | config_groups.*.weights.group_size; GPTQ uses -1 for
    /// per-channel, hence signed.
    pub group_size: Option<i64>,
    /// fp8 block quantization, e.g. [128, 128] (DeepSeek-V3)
    pub weight_block_size: Vec<u64>,
    /// modules_to_not_convert | ignore: modules left unquantized
    pub modules_not_converted: Vec<String>,
    /// fmt / format (e.g. "e4m3", "pack-quantized")
    pub format: Option<String>,
    /// bitsandbytes: load_in_4bit / load_in_8bit
    pub load_in_4bit: Option<bool>,
    pub load_in_8bit: Option<bool>,
}

/// The architecture fields the estimator needs, from config.json or mapped from GGUF keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelConfig {
    pub model_type: Option<String>,
    pub architectures: Vec<String>,
    pub num_hidden_layers: u64,
    pub hidden_size: u64,
    pub num_attention_heads: Option<PerLayer>,
    pub num_key_value_heads: Option<PerLayer>,
    pub head_dim: Option<u64>,
    /// Value head width when given apart from the key width (GGUF attention.value_length).
    pub value_head_dim: Option<u64>,
    pub intermediate_size: Option<PerLayer>,
    pub vocab_size: Option<u64>,
    pub tie_word_embeddings: Option<bool>,
    pub max_position_embeddings: Option<u64>,
    /// torch_dtype (or its newer name dtype), e.g. "bfloat16"
    pub torch_dtype: Option<String>,
    pub sliding_window: Option<u64>,
    /// Qwen2: use_sliding_window
    pub use_sliding_window: Option<bool>,
    /// Gemma 3: every Nth layer is global (sliding_window_pattern)
    pub sliding_window_pattern: Option<u64>,
    /// Qwen2: max_window_layers
    pub max_window_layers: Option<u64>,
    /// Per-layer attention kinds ("sliding_attention", "full_attention", ...), when given.
    pub layer_types: Vec<String>,
    /// Llama 4: attention_chunk_size (chunked local attention)
    pub attention_chunk_size: Option<u64>,
    pub moe: Option<MoeConfig>,
    pub mla: Option<MlaConfig>,
    pub quantization: Option<QuantizationConfig>,
    /// The language-model fields came from a nested text_config (vision-language models).
    pub from_text_config: bool,
}

impl ModelConfig {
    /// head_dim if given, else hidden / heads (the transformers default).
    pub fn effective_head_dim(&self) -> Option<u64> {
        self.head_dim.or_else(|| {
            let heads = self.num_attention_heads.as_ref()?.uniform()?;
            self.hidden_size.checked_div(heads)
        })
    }
}

/// Reads and parses a config.json from disk (size-capped).
pub fn read_config_file(path: &Path) -> Result<ModelConfig, FormatError> {
    let file = show_path(path);
    let bytes = read_json_file(path, MAX_CONFIG_BYTES)?;
    parse_config(&bytes, &file)
}

/// Reads a small JSON file whole (a regular file only), refusing files above `cap` bytes.
pub(crate) fn read_json_file(path: &Path, cap: u64) -> Result<Vec<u8>, FormatError> {
    let src = crate::source::LocalFile::open(path)?;
    crate::source::read_capped(&src, cap, "JSON file")
}

/// Parses config.json bytes. `file` names the file in errors.
pub fn parse_config(bytes: &[u8], file: &str) -> Result<ModelConfig, FormatError> {
    let root: Value = serde_json::from_slice(bytes).map_err(|e| FormatError::json(file, e))?;
    let Value::Object(root) = root else {
        return Err(FormatError::WrongFieldType {
            file: file.to_string(),
            field: "(top level)".to_string(),
            expected: "a JSON object".to_string(),
            found: describe(&root),
        });
    };
    config_from_object(&root, file)
}

/// Where fields are looked up: the nested language-model object first (if any), then the top.
struct Scope<'a> {
    file: &'a str,
    nested: Option<(&'static str, &'a Map<String, Value>)>,
    top: &'a Map<String, Value>,
}

const NESTED_TEXT_KEYS: &[&str] = &["text_config", "llm_config", "language_config"];
const LAYER_NAMES: &[&str] = &["num_hidden_layers", "n_layer", "n_layers", "num_layers"];
const HIDDEN_NAMES: &[&str] = &["hidden_size", "n_embd", "d_model", "dim"];

impl<'a> Scope<'a> {
    /// The first present, non-null field among `names`, with its dotted path.
    fn find(&self, names: &[&str]) -> Option<(String, &'a Value)> {
        if let Some((prefix, obj)) = self.nested {
            for name in names {
                if let Some(v) = obj.get(*name).filter(|v| !v.is_null()) {
                    return Some((format!("{prefix}.{name}"), v));
                }
            }
        }
        for name in names {
            if let Some(v) = self.top.get(*name).filter(|v| !v.is_null()) {
                return Some(((*name).to_string(), v));
            }
        }
        None
    }

    fn wrong(&self, field: &str, expected: &str, found: &Value) -> FormatError {
        FormatError::WrongFieldType {
            file: self.file.to_string(),
            field: one_line(field),
            expected: expected.to_string(),
            found: describe(found),
        }
    }

    fn u64(&self, names: &[&str]) -> Result<Option<u64>, FormatError> {
        match self.find(names) {
            None => Ok(None),
            Some((field, v)) => as_u64(v)
                .map(Some)
                .ok_or_else(|| self.wrong(&field, "a non-negative integer", v)),
        }
    }

    /// A non-negative integer at most `max` (limits.rs): refused naming its field before
    /// anything is sized by it.
    fn bounded_u64(&self, names: &[&str], max: u64) -> Result<Option<u64>, FormatError> {
        match self.find(names) {
            None => Ok(None),
            Some((field, v)) => {
                let n = as_u64(v).ok_or_else(|| self.wrong(&field, "a non-negative integer", v))?;
                if n > max {
                    return Err(FormatError::OverLimit {
                        file: self.file.to_string(),
                        what: format!("field '{}'", one_line(&field)),
                        value: n,
                        cap: max,
                    });
                }
                Ok(Some(n))
            }
        }
    }

    fn required_u64(&self, names: &[&str], max: u64) -> Result<u64, FormatError> {
        self.bounded_u64(names, max)?.ok_or_else(|| {
            let first = names.first().copied().unwrap_or("?");
            let field = match self.nested {
                Some((prefix, _)) => format!("{prefix}.{first}"),
                None => first.to_string(),
            };
            let alternatives = if names.len() > 1 {
                format!(
                    " (also looked for {})",
                    names.get(1..).unwrap_or(&[]).join(", ")
                )
            } else {
                String::new()
            };
            FormatError::MissingField {
                file: self.file.to_string(),
                field,
                alternatives,
            }
        })
    }

    fn i64(&self, names: &[&str]) -> Result<Option<i64>, FormatError> {
        match self.find(names) {
            None => Ok(None),
            Some((field, v)) => as_i64(v)
                .map(Some)
                .ok_or_else(|| self.wrong(&field, "an integer", v)),
        }
    }

    fn bool(&self, names: &[&str]) -> Result<Option<bool>, FormatError> {
        match self.find(names) {
            None => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(*b)),
            Some((field, v)) => Err(self.wrong(&field, "true or false", v)),
        }
    }

    fn string(&self, names: &[&str]) -> Result<Option<String>, FormatError> {
        match self.find(names) {
            None => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.clone())),
            Some((field, v)) => Err(self.wrong(&field, "a string", v)),
        }
    }

    /// A list of strings of at most `max` entries.
    fn string_list(&self, names: &[&str], max: usize) -> Result<Vec<String>, FormatError> {
        match self.find(names) {
            None => Ok(Vec::new()),
            Some((field, v @ Value::Array(items))) => {
                if items.len() > max {
                    return Err(self.wrong(&field, &format!("a list of at most {max} strings"), v));
                }
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(self.wrong(&field, "a list of strings", other)),
                    })
                    .collect()
            }
            Some((field, v)) => Err(self.wrong(&field, "a list of strings", v)),
        }
    }

    /// An integer, or a list of integers (one per layer).
    fn per_layer(&self, names: &[&str]) -> Result<Option<PerLayer>, FormatError> {
        match self.find(names) {
            None => Ok(None),
            Some((field, v @ Value::Array(items))) => {
                if items.is_empty() || items.len() > MAX_PER_LAYER_LEN {
                    return Err(self.wrong(
                        &field,
                        &format!(
                            "an integer or a list of 1 to {MAX_PER_LAYER_LEN} integers (one per layer)"
                        ),
                        v,
                    ));
                }
                let values = items
                    .iter()
                    .map(|v| {
                        as_u64(v)
                            .ok_or_else(|| self.wrong(&field, "a list of non-negative integers", v))
                    })
                    .collect::<Result<Vec<u64>, _>>()?;
                Ok(Some(PerLayer::from_vec(values)))
            }
            Some((field, v)) => as_u64(v)
                .map(|n| Some(PerLayer::Uniform(n)))
                .ok_or_else(|| self.wrong(&field, "an integer or a list of integers", v)),
        }
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            // Accept 4096.0: some writers emit whole numbers as floats.
            let f = n.as_f64()?;
            (f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
        }),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
        }),
        _ => None,
    }
}

/// "string \"4096\"", "a list", ... for error messages (values shortened).
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", crate::error::quoted(s).replace('\'', "\"")),
        Value::Array(a) => format!("a list of {} items", a.len()),
        Value::Object(_) => "an object".to_string(),
    }
}

fn config_from_object(root: &Map<String, Value>, file: &str) -> Result<ModelConfig, FormatError> {
    // Use the nested language-model object when the top level has no layer count of its own.
    let top_has_layers = LAYER_NAMES
        .iter()
        .any(|n| root.get(*n).is_some_and(|v| !v.is_null()));
    let mut nested = None;
    if !top_has_layers {
        for key in NESTED_TEXT_KEYS {
            match root.get(*key) {
                Some(Value::Object(obj)) => {
                    nested = Some((*key, obj));
                    break;
                }
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(FormatError::WrongFieldType {
                        file: file.to_string(),
                        field: (*key).to_string(),
                        expected: "an object".to_string(),
                        found: describe(other),
                    })
                }
            }
        }
    }
    let s = Scope {
        file,
        nested,
        top: root,
    };

    use vramplan_core::limits;
    let num_hidden_layers = s.required_u64(LAYER_NAMES, limits::MAX_LAYERS)?;
    let hidden_size = s.required_u64(HIDDEN_NAMES, limits::MAX_HIDDEN_SIZE)?;

    let num_experts = s.bounded_u64(
        &[
            "num_local_experts",
            "num_experts",
            "n_routed_experts",
            "moe_num_experts",
        ],
        limits::MAX_EXPERTS,
    )?;
    let moe = match num_experts {
        Some(n) if n > 0 => Some(MoeConfig {
            num_experts: n,
            num_experts_per_tok: s.u64(&[
                "num_experts_per_tok",
                "experts_per_token",
                "num_experts_per_token",
                "moe_top_k",
            ])?,
            num_shared_experts: s.u64(&["n_shared_experts", "num_shared_experts"])?,
            moe_intermediate_size: s.u64(&["moe_intermediate_size", "expert_intermediate_size"])?,
            shared_expert_intermediate_size: s.u64(&["shared_expert_intermediate_size"])?,
            first_k_dense_replace: s.u64(&["first_k_dense_replace"])?,
            moe_layer_step: s.u64(&[
                "interleave_moe_layer_step",
                "decoder_sparse_step",
                "moe_layer_freq",
                "expert_layer_period",
            ])?,
            moe_layer_offset: s.u64(&["expert_layer_offset"])?,
            dense_intermediate_size: s.u64(&["intermediate_size_mlp"])?,
        }),
        _ => None,
    };

    let mla = match s.u64(&["kv_lora_rank"])? {
        Some(rank) if rank > 0 => Some(MlaConfig {
            kv_lora_rank: rank,
            q_lora_rank: s.u64(&["q_lora_rank"])?,
            qk_rope_head_dim: s.u64(&["qk_rope_head_dim"])?,
            qk_nope_head_dim: s.u64(&["qk_nope_head_dim"])?,
            v_head_dim: s.u64(&["v_head_dim"])?,
        }),
        _ => None,
    };

    let quantization = match s.find(&["quantization_config", "quantization"]) {
        None => None,
        Some((field, Value::Object(q))) => Some(quantization_from_object(q, &field, file)?),
        Some((field, other)) => return Err(s.wrong(&field, "an object", other)),
    };

    Ok(ModelConfig {
        model_type: s.string(&["model_type"])?,
        architectures: s.string_list(&["architectures"], MAX_LIST_LEN)?,
        num_hidden_layers,
        hidden_size,
        num_attention_heads: s.per_layer(&[
            "num_attention_heads",
            "n_head",
            "n_heads",
            "num_heads",
            "num_query_heads",
        ])?,
        num_key_value_heads: s.per_layer(&[
            "num_key_value_heads",
            "num_kv_heads",
            "n_head_kv",
            "multi_query_group_num",
            "n_kv_heads",
        ])?,
        head_dim: s.u64(&["head_dim", "kv_channels"])?,
        value_head_dim: None,
        intermediate_size: s.per_layer(&[
            "intermediate_size",
            "ffn_dim",
            "n_inner",
            "ffn_hidden_size",
        ])?,
        vocab_size: s.bounded_u64(
            &["vocab_size", "padded_vocab_size", "n_vocab"],
            limits::MAX_VOCAB_SIZE,
        )?,
        tie_word_embeddings: s.bool(&["tie_word_embeddings"])?,
        max_position_embeddings: s.u64(&[
            "max_position_embeddings",
            "n_positions",
            "max_seq_len",
            "seq_length",
            "max_sequence_length",
        ])?,
        torch_dtype: torch_dtype(&s)?,
        sliding_window: s.u64(&["sliding_window", "sliding_window_size"])?,
        use_sliding_window: s.bool(&["use_sliding_window"])?,
        sliding_window_pattern: s.u64(&["sliding_window_pattern"])?,
        max_window_layers: s.u64(&["max_window_layers"])?,
        layer_types: s.string_list(&["layer_types"], MAX_PER_LAYER_LEN)?,
        attention_chunk_size: s.u64(&["attention_chunk_size"])?,
        moe,
        mla,
        quantization,
        from_text_config: nested.is_some(),
    })
}

/// `torch_dtype` (or its newer name `dtype`), refused naming the field unless it is a dtype a
/// checkpoint's weights are sized from ([`KNOWN_TORCH_DTYPES`]).
fn torch_dtype(s: &Scope) -> Result<Option<String>, FormatError> {
    let names = ["torch_dtype", "dtype"];
    let Some(dtype) = s.string(&names)? else {
        return Ok(None);
    };
    let lower = dtype.to_ascii_lowercase();
    let lower = lower.strip_prefix("torch.").unwrap_or(&lower);
    if KNOWN_TORCH_DTYPES.contains(&lower) {
        return Ok(Some(dtype));
    }
    let (field, v) = s.find(&names).expect("found above");
    Err(s.wrong(
        &field,
        &format!("one of {}", KNOWN_TORCH_DTYPES[..3].join(", ")),
        v,
    ))
}

/// A wrong-typed field inside a nested object, named by its full path (`quantization_config.bits`).
fn under(e: FormatError, prefix: &str) -> FormatError {
    match e {
        FormatError::WrongFieldType {
            file,
            field,
            expected,
            found,
        } => FormatError::WrongFieldType {
            file,
            field: format!("{prefix}.{field}"),
            expected,
            found,
        },
        other => other,
    }
}

fn quantization_from_object(
    q: &Map<String, Value>,
    prefix: &str,
    file: &str,
) -> Result<QuantizationConfig, FormatError> {
    let s = Scope {
        file,
        nested: None,
        top: q,
    };
    let fix = |e: FormatError| under(e, prefix);
    let mut out = QuantizationConfig {
        quant_method: s.string(&["quant_method"]).map_err(fix)?,
        bits: quant_bits(&s, &["bits", "w_bit", "num_bits"]).map_err(fix)?,
        group_size: quant_group(&s, &["group_size", "q_group_size"]).map_err(fix)?,
        weight_block_size: match s.per_layer(&["weight_block_size"]).map_err(fix)? {
            None => Vec::new(),
            Some(PerLayer::Uniform(v)) => vec![v, v],
            Some(PerLayer::Layers(vs)) => vs,
        },
        modules_not_converted: s
            .string_list(
                &["modules_to_not_convert", "ignore", "ignored_layers"],
                MAX_LIST_LEN,
            )
            .map_err(fix)?,
        format: s.string(&["fmt", "format"]).map_err(fix)?,
        load_in_4bit: s.bool(&["load_in_4bit"]).map_err(fix)?,
        load_in_8bit: s.bool(&["load_in_8bit"]).map_err(fix)?,
    };
    // compressed-tensors keeps the scheme in config_groups.<group>.weights.
    if let Some(Value::Object(groups)) = q.get("config_groups") {
        if let Some((name, Value::Object(group))) = groups.iter().next() {
            if let Some(Value::Object(weights)) = group.get("weights") {
                let ws = Scope {
                    file,
                    nested: None,
                    top: weights,
                };
                let group_prefix = format!("{prefix}.config_groups.{name}.weights");
                let fix_group = |e: FormatError| under(e, &group_prefix);
                if out.bits.is_none() {
                    out.bits = quant_bits(&ws, &["num_bits"]).map_err(fix_group)?;
                }
                if out.group_size.is_none() {
                    out.group_size = quant_group(&ws, &["group_size"]).map_err(fix_group)?;
                }
            }
        }
    }
    Ok(out)
}

/// A quantized weight's bit width: 1 to [`MAX_QUANT_BITS`], refused naming its field otherwise
/// (a `bits` of 2^40 must not be read as 4-bit GPTQ).
fn quant_bits(s: &Scope, names: &[&str]) -> Result<Option<u64>, FormatError> {
    match s.u64(names)? {
        Some(b) if b == 0 || b > MAX_QUANT_BITS => {
            let (field, v) = s.find(names).expect("found above");
            Err(s.wrong(
                &field,
                &format!("a bit width from 1 to {MAX_QUANT_BITS}"),
                v,
            ))
        }
        other => Ok(other),
    }
}

/// A quantization group size: -1 (one group per output channel) or 1 to [`MAX_QUANT_GROUP`].
fn quant_group(s: &Scope, names: &[&str]) -> Result<Option<i64>, FormatError> {
    match s.i64(names)? {
        Some(g) if g != -1 && !(1..=MAX_QUANT_GROUP).contains(&g) => {
            let (field, v) = s.find(names).expect("found above");
            Err(s.wrong(
                &field,
                &format!("-1 (per channel) or a group size from 1 to {MAX_QUANT_GROUP}"),
                v,
            ))
        }
        other => Ok(other),
    }
}
