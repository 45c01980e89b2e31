//! Engine profiles: each engine decides how much memory goes to activations, runtime overhead
//! and KV cache. One file per engine; every engine-specific rule lives in its file, citing the
//! engine source it follows.

pub mod generic;
pub mod llamacpp;
pub mod ollama;
pub mod releases;
pub mod sglang;
pub mod vllm;

use std::fmt;

/// The serving engines vramplan models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Generic,
    Vllm,
    LlamaCpp,
    Ollama,
    Sglang,
}

impl EngineKind {
    pub const ALL: [EngineKind; 5] = [
        EngineKind::Generic,
        EngineKind::Vllm,
        EngineKind::LlamaCpp,
        EngineKind::Ollama,
        EngineKind::Sglang,
    ];

    pub fn parse(text: &str) -> Result<EngineKind, String> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', '.'], "")
            .as_str()
        {
            "generic" | "none" => Ok(EngineKind::Generic),
            "vllm" => Ok(EngineKind::Vllm),
            "llamacpp" | "llama" | "llamaserver" => Ok(EngineKind::LlamaCpp),
            "ollama" => Ok(EngineKind::Ollama),
            "sglang" => Ok(EngineKind::Sglang),
            _ => Err(format!(
                "unknown engine '{text}'; use one of generic, vllm, llamacpp, ollama, sglang"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EngineKind::Generic => "generic",
            EngineKind::Vllm => "vllm",
            EngineKind::LlamaCpp => "llamacpp",
            EngineKind::Ollama => "ollama",
            EngineKind::Sglang => "sglang",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

use crate::estimate::Config;
use crate::model::ModelDesc;
use crate::parallel::Parallelism;
use crate::precision::{KvDtype, WeightFormat};

/// The engine-neutral part of a request, as the CLI and the web API carry it: what is asked
/// for whatever the engine. Each engine's flags (`vllm::VllmFlags`, `sglang::SglangFlags`,
/// `llamacpp::LlamaCppFlags`, `ollama::OllamaFlags`) resolve against it into a `Config` and the
/// engine's own arguments; the parsing, defaults and meaning of every engine flag live there.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `--quant` / vLLM's `--quantization`: None = the checkpoint's own.
    pub quant: Option<String>,
    /// `--kv-dtype` / vLLM's `--kv-cache-dtype` ("auto" = the engine's default).
    pub kv_dtype: String,
    /// Tokens per sequence (`--max-model-len`, `-c`, `num_ctx`).
    pub context: u64,
    /// Concurrent sequences.
    pub batch: u64,
    pub parallel: Parallelism,
    /// `--gpu-memory-utilization` when given.
    pub utilization: Option<f64>,
    /// Tokens per prefill forward pass (generic engine).
    pub prefill_chunk: u64,
}

impl Request {
    pub fn new(context: u64, batch: u64) -> Request {
        Request {
            quant: None,
            kv_dtype: "auto".into(),
            context,
            batch,
            parallel: Parallelism::default(),
            utilization: None,
            prefill_chunk: generic::DEFAULT_PREFILL_CHUNK,
        }
    }

    /// The `Config` the generic model and every engine start from.
    pub fn config(&self, weights: WeightFormat, kv: KvDtype, default_utilization: f64) -> Config {
        let mut c = Config::new(weights, kv, self.context, self.batch);
        c.parallel = self.parallel;
        c.utilization = self.utilization.unwrap_or(default_utilization);
        c.prefill_chunk = self.prefill_chunk;
        c
    }

    /// The generic engine: vramplan's precision names (and the engines' own, which name the
    /// same layouts), a KV cache in fp16 unless given.
    pub fn generic_config(&self, model: &ModelDesc) -> Result<Config, String> {
        let weights = weight_format(self.quant.as_deref(), model)?;
        let kv = KvDtype::parse(&self.kv_dtype)?;
        Ok(self.config(weights, kv, generic::DEFAULT_UTILIZATION))
    }
}

/// A precision named on the command line: vramplan's names (`precision.rs`), vLLM's
/// `--quantization` names (vllm::flags) and GGUF file types (llamacpp::flags); None = the
/// checkpoint's own format.
pub fn weight_format(text: Option<&str>, model: &ModelDesc) -> Result<WeightFormat, String> {
    let Some(q) = text else {
        return Ok(model.native_format());
    };
    let lower = q.trim().to_ascii_lowercase();
    if let Some(f) = vllm::quantization_format(&lower, model) {
        return Ok(f);
    }
    let name = llamacpp::gguf_file_type_base(&lower).unwrap_or(&lower);
    WeightFormat::parse(name)
}

/// `--dtype` of vLLM and SGLang (auto, bfloat16, float16, float32): bytes of one activation
/// element, the unquantized weight format and the KV dtype "auto" stands for. "auto" is the
/// checkpoint's dtype, except that fp32 checkpoints are served in bf16 (vllm/config/model.py
/// `_get_and_verify_dtype`; sglang/srt/configs/model_config.py `_get_and_verify_dtype`).
pub fn serving_dtype(
    text: &str,
    model: &ModelDesc,
) -> Result<(u64, WeightFormat, KvDtype), String> {
    let t = text.trim().to_ascii_lowercase();
    let native = match model.dtype.to_ascii_lowercase().as_str() {
        "fp16" | "f16" | "float16" => "float16",
        _ => "bfloat16",
    };
    let resolved = if t == "auto" { native } else { t.as_str() };
    Ok(match resolved {
        "bfloat16" | "bf16" => (2, WeightFormat::Bf16, KvDtype::Bf16),
        "float16" | "fp16" | "half" => (2, WeightFormat::F16, KvDtype::F16),
        "float32" | "fp32" | "float" => (4, WeightFormat::F32, KvDtype::F32),
        other => {
            return Err(format!(
                "--dtype '{other}': use auto, bfloat16, float16 or float32"
            ))
        }
    })
}

/// A KV dtype flag where "auto" means `default`.
pub fn kv_dtype_or(text: &str, default: KvDtype) -> Result<KvDtype, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        Ok(default)
    } else {
        KvDtype::parse(text)
    }
}
