//! llama.cpp's own flags (`llama-server -c -ngl -np -ctk -ctv -fa -ub -b --kv-unified
//! --swa-full --no-kv-offload`), as vramplan's CLI and web API carry them: parsing, defaults
//! (common/common.h) and meaning live here. New llama.cpp flags (-ts, -sm, -ot, --n-cpu-moe)
//! follow the same pattern: a raw field on `LlamaCppFlags`, parsed in `resolve` into
//! `LlamaCppArgs`.

use super::{FlashAttn, LlamaCppArgs, TypeMix};
use crate::engine::{kv_dtype_or, weight_format, Request};
use crate::estimate::Config;
use crate::ggml::GgmlType;
use crate::model::ModelDesc;
use crate::precision::{KvDtype, WeightFormat};

/// A GGUF file type named like llama-quantize's (Q4_K_M, q5_k_s, Q3_K_L): its base ggml type
/// (the mix of higher-precision output and attn_v/ffn_down tensors a real file has is not
/// counted by this name alone). Already lower-case; None when the text is not such a name.
pub fn gguf_file_type_base(lower: &str) -> Option<&str> {
    lower
        .strip_suffix("_m")
        .or_else(|| lower.strip_suffix("_s"))
        .or_else(|| lower.strip_suffix("_l"))
        .filter(|b| GgmlType::by_name(b).is_some())
}

/// llama.cpp's flags as given ("auto" / None = llama.cpp's default).
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaCppFlags {
    /// `-ngl` (ollama: num_gpu).
    pub n_gpu_layers: Option<u64>,
    /// `-np` (ollama: OLLAMA_NUM_PARALLEL); None = the request's batch.
    pub parallel: Option<u64>,
    /// `-ctk` (ollama: OLLAMA_KV_CACHE_TYPE); "auto" = the request's KV dtype, else f16.
    pub cache_type_k: String,
    /// `-ctv`.
    pub cache_type_v: String,
    /// `-fa on|off|auto`.
    pub flash_attn: String,
    /// `-ub` (ollama: num_batch).
    pub ubatch_size: Option<u64>,
    /// `-b`.
    pub batch_size: Option<u64>,
    pub kv_unified: bool,
    pub swa_full: bool,
    pub no_kv_offload: bool,
}

impl Default for LlamaCppFlags {
    fn default() -> LlamaCppFlags {
        LlamaCppFlags {
            n_gpu_layers: None,
            parallel: None,
            cache_type_k: "auto".into(),
            cache_type_v: "auto".into(),
            flash_attn: "auto".into(),
            ubatch_size: None,
            batch_size: None,
            kv_unified: false,
            swa_full: false,
            no_kv_offload: false,
        }
    }
}

impl LlamaCppFlags {
    /// `-ctk`/`-ctv`: "auto" falls back to the request's KV dtype, whose "auto" is llama.cpp's
    /// f16 (common/common.h `cache_type_k = GGML_TYPE_F16`).
    pub fn cache_type(given: &str, req: &Request) -> Result<KvDtype, String> {
        let text = if given.trim().eq_ignore_ascii_case("auto") {
            req.kv_dtype.as_str()
        } else {
            given
        };
        kv_dtype_or(text, KvDtype::F16)
    }

    /// The weights a GGUF conversion of `model` holds: `--quant` when given, else the
    /// checkpoint's 16-bit type (an unquantized conversion keeps F16/BF16).
    pub fn weights(req: &Request, model: &ModelDesc) -> Result<WeightFormat, String> {
        match &req.quant {
            Some(_) => weight_format(req.quant.as_deref(), model),
            None => Ok(match model.native_format() {
                WeightFormat::F32 | WeightFormat::F16 => WeightFormat::F16,
                _ => WeightFormat::Bf16,
            }),
        }
    }

    /// The `Config`, type mix and `LlamaCppArgs` these flags ask for.
    pub fn resolve(
        &self,
        model: &ModelDesc,
        req: &Request,
    ) -> Result<(Config, TypeMix, LlamaCppArgs), String> {
        let weights = Self::weights(req, model)?;
        let mix = TypeMix::from_format(weights)?;
        let d = LlamaCppArgs::default();
        let a = LlamaCppArgs {
            n_ctx: req.context,
            n_seq: self.parallel.unwrap_or(req.batch),
            kv_unified: self.kv_unified,
            n_batch: self.batch_size.unwrap_or(d.n_batch),
            n_ubatch: self.ubatch_size.unwrap_or(d.n_ubatch),
            type_k: Self::cache_type(&self.cache_type_k, req)?,
            type_v: Self::cache_type(&self.cache_type_v, req)?,
            flash_attn: FlashAttn::parse(&self.flash_attn)?,
            swa_full: self.swa_full,
            n_gpu_layers: self.n_gpu_layers,
            offload_kqv: !self.no_kv_offload,
        };
        let config = req.config(
            weights,
            a.type_k,
            crate::engine::generic::DEFAULT_UTILIZATION,
        );
        Ok((config, mix, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    #[test]
    fn llama_cpp_defaults_and_names() {
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let mut req = Request::new(8192, 2);
        let (c, _, a) = LlamaCppFlags::default().resolve(m, &req).unwrap();
        // An unquantized conversion keeps bf16; f16 cache; -np = the batch; -ub 512.
        assert_eq!(c.weights, WeightFormat::Bf16);
        assert_eq!((a.type_k, a.type_v), (KvDtype::F16, KvDtype::F16));
        assert_eq!((a.n_seq, a.n_ubatch, a.n_batch), (2, 512, 2048));
        // -ctk auto follows --kv-dtype; GGUF file-type names map to their base type.
        req.kv_dtype = "q8_0".into();
        req.quant = Some("Q4_K_M".into());
        let flags = LlamaCppFlags {
            cache_type_v: "q4_0".into(),
            flash_attn: "on".into(),
            ..LlamaCppFlags::default()
        };
        let (c, _, a) = flags.resolve(m, &req).unwrap();
        assert_eq!(c.weights, WeightFormat::parse("q4_k").unwrap());
        assert_eq!(a.type_k.name(), "q8_0");
        assert_eq!(a.type_v.name(), "q4_0");
        assert_eq!(a.flash_attn, FlashAttn::On);
        assert_eq!(gguf_file_type_base("q5_k_s"), Some("q5_k"));
        assert_eq!(gguf_file_type_base("awq"), None);
        let bad = LlamaCppFlags {
            flash_attn: "maybe".into(),
            ..LlamaCppFlags::default()
        };
        assert!(bad.resolve(m, &req).is_err());
    }
}
