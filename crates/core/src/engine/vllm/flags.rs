//! vLLM's own flags, as typed on `vllm serve` (and carried unchanged by vramplan's CLI and web
//! API): their parsing, their defaults and what each means for memory. `VllmFlags::resolve`
//! is the only place they become a `Config` and `VllmArgs`.

use super::hybrid::{HybridFlags, MambaCacheMode, MambaDtype};
use super::weights::{Lora, Speculative, SpeculativeMethod};
use super::{Release, VllmArgs};
use crate::engine::{kv_dtype_or, serving_dtype, weight_format, Request};
use crate::estimate::Config;
use crate::model::ModelDesc;
use crate::precision::WeightFormat;

/// How vLLM is started: the OpenAI server (`vllm serve`) or the offline `LLM` class. Their
/// batch defaults differ (vllm/engine/arg_utils.py `get_batch_defaults`: UsageContext
/// OPENAI_API_SERVER vs LLM_CLASS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Entrypoint {
    #[default]
    Serve,
    Offline,
}

impl Entrypoint {
    pub fn parse(text: &str) -> Result<Entrypoint, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "serve" | "server" | "api" | "openai" => Ok(Entrypoint::Serve),
            "llm" | "offline" | "python" => Ok(Entrypoint::Offline),
            _ => Err(format!(
                "--vllm-entrypoint '{text}': use serve (vllm serve, the OpenAI server) or llm (the offline LLM class)"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Entrypoint::Serve => "serve",
            Entrypoint::Offline => "llm",
        }
    }
}

/// vLLM's `--quantization` names that differ from vramplan's (already lower-case): the Marlin
/// kernels load the AWQ/GPTQ layouts; bitsandbytes is NF4 unless the checkpoint says 8-bit;
/// compressed-tensors and modelopt checkpoints carry their format in the model entry.
pub fn quantization_format(lower: &str, model: &ModelDesc) -> Option<WeightFormat> {
    Some(match lower {
        "awq_marlin" => WeightFormat::Awq { group: 128 },
        "gptq_marlin" | "gptq_marlin_24" => WeightFormat::Gptq {
            bits: 4,
            group: 128,
        },
        "bitsandbytes" => WeightFormat::BnbNf4,
        "compressed-tensors" | "compressed_tensors" | "modelopt" => model.native_format(),
        _ => return None,
    })
}

/// vLLM's flags as given (None / "auto" = vLLM's default).
#[derive(Debug, Clone, PartialEq)]
pub struct VllmFlags {
    /// `--vllm-version`: 0.10 to 0.34, "latest".
    pub vllm_version: String,
    /// `--dtype`.
    pub dtype: String,
    pub block_size: Option<u64>,
    pub max_num_seqs: Option<u64>,
    pub max_num_batched_tokens: Option<u64>,
    pub enforce_eager: bool,
    pub enable_expert_parallel: bool,
    /// `--vllm-entrypoint serve|llm`.
    pub entrypoint: String,
    pub enable_lora: bool,
    pub max_loras: Option<u64>,
    pub max_lora_rank: Option<u64>,
    pub max_cpu_loras: Option<u64>,
    /// `--speculative-config` JSON.
    pub speculative_config: Option<String>,
    /// VLLM_USE_V2_MODEL_RUNNER as `--vllm-model-runner auto|v1|v2`.
    pub model_runner: String,
    /// `--enable-extensible-kv-cache` / `--no-enable-extensible-kv-cache` (0.34).
    pub extensible_kv_cache: Option<bool>,
    /// `--mamba-cache-dtype` (auto, float32, float16): the conv (and by default the SSM) state.
    pub mamba_cache_dtype: String,
    /// `--mamba-ssm-cache-dtype` (auto, float32, float16): the temporal state.
    pub mamba_ssm_cache_dtype: String,
    /// `--mamba-cache-mode` (none, all, align; 0.16+); None = the release's default.
    pub mamba_cache_mode: Option<String>,
    /// `--enable-prefix-caching` / `--no-enable-prefix-caching`; None = the release's default
    /// (for hybrid models: off until 0.25, on from 0.26).
    pub enable_prefix_caching: Option<bool>,
    /// `--skip-mm-profiling` (0.10.1+).
    pub skip_mm_profiling: bool,
}

impl Default for VllmFlags {
    fn default() -> VllmFlags {
        VllmFlags {
            vllm_version: "latest".into(),
            dtype: "auto".into(),
            block_size: None,
            max_num_seqs: None,
            max_num_batched_tokens: None,
            enforce_eager: false,
            enable_expert_parallel: false,
            entrypoint: "serve".into(),
            enable_lora: false,
            max_loras: None,
            max_lora_rank: None,
            max_cpu_loras: None,
            speculative_config: None,
            model_runner: "auto".into(),
            extensible_kv_cache: None,
            mamba_cache_dtype: "auto".into(),
            mamba_ssm_cache_dtype: "auto".into(),
            mamba_cache_mode: None,
            enable_prefix_caching: None,
            skip_mm_profiling: false,
        }
    }
}

impl VllmFlags {
    /// The `Config` and `VllmArgs` these flags ask for on `model`.
    pub fn resolve(&self, model: &ModelDesc, req: &Request) -> Result<(Config, VllmArgs), String> {
        let release = Release::parse(&self.vllm_version)?;
        let (act, float_weights, auto_kv) = serving_dtype(&self.dtype, model)?;
        // Unquantized checkpoints are served in --dtype; quantized ones keep their layout.
        let weights = match (&req.quant, model.quantization.is_some()) {
            (None, false) => float_weights,
            _ => weight_format(req.quant.as_deref(), model)?,
        };
        let kv = kv_dtype_or(&req.kv_dtype, auto_kv)?;
        let config = req.config(weights, kv, release.default_utilization());
        let mut a = VllmArgs::new(release);
        a.utilization_given = req.utilization.is_some();
        a.block_size = self.block_size;
        a.max_num_seqs = self.max_num_seqs;
        a.max_num_batched_tokens = self.max_num_batched_tokens;
        a.enforce_eager = self.enforce_eager;
        a.activation_bytes = act;
        a.expert_parallel = self.enable_expert_parallel;
        a.entrypoint = Entrypoint::parse(&self.entrypoint)?;
        a.model_runner_v2 = match self.model_runner.trim().to_ascii_lowercase().as_str() {
            "auto" => None,
            "v1" | "0" => Some(false),
            "v2" | "1" => Some(true),
            other => {
                return Err(format!(
                    "--vllm-model-runner '{other}': use auto, v1 or v2 (VLLM_USE_V2_MODEL_RUNNER)"
                ))
            }
        };
        a.extensible_kv_cache = self.extensible_kv_cache;
        a.hybrid = HybridFlags {
            mamba_cache_dtype: MambaDtype::parse("--mamba-cache-dtype", &self.mamba_cache_dtype)?,
            mamba_ssm_cache_dtype: MambaDtype::parse(
                "--mamba-ssm-cache-dtype",
                &self.mamba_ssm_cache_dtype,
            )?,
            mamba_cache_mode: self
                .mamba_cache_mode
                .as_deref()
                .map(MambaCacheMode::parse)
                .transpose()?,
            prefix_caching: self.enable_prefix_caching,
        };
        if self.skip_mm_profiling
            && release
                < (Release {
                    minor: 10,
                    patch: 1,
                })
        {
            return Err(
                "--skip-mm-profiling arrives in vLLM 0.10.1 (vllm/engine/arg_utils.py)".into(),
            );
        }
        a.skip_mm_profiling = self.skip_mm_profiling;
        // Without --enable-lora vLLM builds no LoRA config and ignores the sizes
        // (vllm/engine/arg_utils.py `create_engine_config`: the LoRA config only `if
        // self.enable_lora`).
        if self.enable_lora {
            let d = Lora::default();
            let lora = Lora {
                max_loras: self.max_loras.unwrap_or(d.max_loras),
                max_lora_rank: self.max_lora_rank.unwrap_or(d.max_lora_rank),
                max_cpu_loras: self.max_cpu_loras,
            };
            lora.check(model)?;
            a.lora = Some(lora);
        }
        if let Some(text) = &self.speculative_config {
            a.speculative = Some(parse_speculative(text, model)?);
        }
        Ok((config, a))
    }
}

/// `--speculative-config` (vllm/config/speculative.py `SpeculativeConfig`): a JSON object with
/// "method" (draft_model, eagle, eagle3, mtp and the model-specific MTP names, ngram), "model"
/// (the draft or head checkpoint) and "num_speculative_tokens".
pub fn parse_speculative(text: &str, target: &ModelDesc) -> Result<Speculative, String> {
    if text.len() > 4096 {
        return Err("--speculative-config is longer than 4096 characters".into());
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!("--speculative-config is not a JSON object ({e}); e.g. '{{\"method\": \"eagle\", \"model\": \"...\", \"num_speculative_tokens\": 3}}'")
    })?;
    let obj = v
        .as_object()
        .ok_or("--speculative-config must be a JSON object")?;
    let tokens = match obj.get("num_speculative_tokens") {
        None => 1,
        Some(n) => n.as_u64().filter(|&n| (1..=64).contains(&n)).ok_or(
            "--speculative-config: num_speculative_tokens must be an integer from 1 to 64",
        )?,
    };
    let model_name = obj.get("model").and_then(|m| m.as_str());
    let method = obj
        .get("method")
        .and_then(|m| m.as_str())
        .map(|m| m.to_ascii_lowercase());
    let method = match method.as_deref() {
        Some("ngram") | Some("[ngram]") | Some("suffix") => SpeculativeMethod::Ngram,
        Some("eagle") => SpeculativeMethod::Eagle { eagle3: false },
        Some("eagle3") => SpeculativeMethod::Eagle { eagle3: true },
        Some(m) if m == "mtp" || m.ends_with("_mtp") => SpeculativeMethod::Mtp { layers: 1 },
        Some("draft_model") | None => {
            let name = model_name.ok_or(
                "--speculative-config needs a \"model\" (the draft) or a \"method\" (eagle, eagle3, mtp, ngram)",
            )?;
            let draft = crate::catalogue().model(name).map_err(|e| {
                format!("--speculative-config draft model: {e} (draft models are looked up in the catalogue)")
            })?;
            if draft.vocab_size != target.vocab_size {
                return Err(format!(
                    "--speculative-config: the draft {} has a vocabulary of {} tokens, the target {} of {}; vLLM needs the same tokenizer",
                    draft.id, draft.vocab_size, target.id, target.vocab_size
                ));
            }
            SpeculativeMethod::DraftModel(Box::new(draft.clone()))
        }
        Some(other) => {
            return Err(format!(
                "--speculative-config method '{other}' is not modelled; use draft_model, eagle, eagle3, mtp or ngram"
            ))
        }
    };
    Ok(Speculative {
        method,
        num_speculative_tokens: tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    #[test]
    fn flags_resolve_with_vllm_defaults() {
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let req = Request::new(8192, 1);
        let (c, a) = VllmFlags::default().resolve(m, &req).unwrap();
        // Latest release: 0.34, whose extensible KV cache defaults the utilization to 1.0.
        assert_eq!(a.release, Release::NEWEST);
        assert_eq!(c.utilization, 1.0);
        assert!(!a.utilization_given);
        assert_eq!(c.weights, WeightFormat::Bf16);
        let flags = VllmFlags {
            vllm_version: "0.19".into(),
            ..VllmFlags::default()
        };
        let (c, _) = flags.resolve(m, &req).unwrap();
        assert_eq!(c.utilization, 0.9);
        let req = Request {
            utilization: Some(0.95),
            kv_dtype: "fp8_e4m3".into(),
            quant: Some("awq_marlin".into()),
            ..req
        };
        let (c, a) = flags.resolve(m, &req).unwrap();
        assert!(a.utilization_given);
        assert_eq!(c.utilization, 0.95);
        assert_eq!(c.kv_dtype, crate::precision::KvDtype::Fp8);
        assert_eq!(c.weights, WeightFormat::Awq { group: 128 });
    }

    #[test]
    fn lora_and_speculative_flags() {
        let cat = catalogue();
        let m = cat.model("llama-3.1-8b").unwrap();
        let req = Request::new(8192, 1);
        // Sizes without --enable-lora are ignored, as vLLM ignores them.
        let f = VllmFlags {
            max_loras: Some(4),
            ..VllmFlags::default()
        };
        assert!(f.resolve(m, &req).unwrap().1.lora.is_none());
        let f = VllmFlags {
            enable_lora: true,
            max_loras: Some(4),
            speculative_config: Some(
                r#"{"method": "eagle", "model": "yuhuili/EAGLE-LLaMA3.1-Instruct-8B", "num_speculative_tokens": 3}"#.into(),
            ),
            ..VllmFlags::default()
        };
        let (_, a) = f.resolve(m, &req).unwrap();
        assert_eq!(a.lora.unwrap().max_loras, 4);
        assert_eq!(a.lora.unwrap().max_lora_rank, 16);
        let s = a.speculative.unwrap();
        assert_eq!(s.method, SpeculativeMethod::Eagle { eagle3: false });
        assert_eq!(s.num_speculative_tokens, 3);
        // A draft model from the catalogue, same tokenizer.
        let s = parse_speculative(r#"{"model": "meta-llama/Llama-3.2-1B-Instruct"}"#, m).unwrap();
        assert!(matches!(s.method, SpeculativeMethod::DraftModel(_)));
        // Another tokenizer is refused, as vLLM does.
        assert!(parse_speculative(r#"{"model": "qwen2.5-0.5b"}"#, m)
            .unwrap_err()
            .contains("tokenizer"));
        assert!(parse_speculative("{nope", m).unwrap_err().contains("JSON"));
        assert!(parse_speculative(r#"{"method": "medusa"}"#, m)
            .unwrap_err()
            .contains("medusa"));
    }

    #[test]
    fn entrypoints_and_runners() {
        assert_eq!(Entrypoint::parse("LLM").unwrap(), Entrypoint::Offline);
        assert_eq!(Entrypoint::parse("serve").unwrap(), Entrypoint::Serve);
        assert!(Entrypoint::parse("grpc").is_err());
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let f = VllmFlags {
            model_runner: "v3".into(),
            ..VllmFlags::default()
        };
        assert!(f
            .resolve(m, &Request::new(8192, 1))
            .unwrap_err()
            .contains("v3"));
    }
}
