//! llama.cpp's own flags (`llama-server -c -ngl -np -ctk -ctv -fa -ub -b --kv-unified
//! --swa-full --no-kv-offload -ts -sm -mg --n-cpu-moe --cpu-moe -ot --no-mmap`, one `--gpu` per
//! device, and vramplan's `--host-memory`), as vramplan's CLI and web API carry them: parsing,
//! defaults (common/common.h, common/arg.cpp) and meaning live here. A new llama.cpp flag is a
//! raw field on `LlamaCppFlags`, parsed in `resolve` into `LlamaCppArgs`.

use super::{devices, FlashAttn, LlamaCppArgs, TypeMix};
use crate::engine::{kv_dtype_or, weight_format, Request};
use crate::estimate::Config;
use crate::ggml::GgmlType;
use crate::gpu::Gpu;
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
    /// `--gpu` as given: more than one names each device in llama.cpp's order (catalogue ids,
    /// aliases or nvidia-smi names); one (or none) means `gpus` devices of the request's GPU.
    pub gpu: Vec<String>,
    /// How many devices of the one kind (vramplan's `--gpus`, else `--tp`); None = 1.
    pub gpus: Option<u64>,
    /// `-ts 3,1`: each GPU's proportion of the layers (None = by free memory).
    pub tensor_split: Option<String>,
    /// `-sm none|layer|row` (default layer).
    pub split_mode: String,
    /// `-mg`: the GPU of `-sm none|row`.
    pub main_gpu: usize,
    /// `--n-cpu-moe N`: the experts of the first N layers stay in host memory.
    pub n_cpu_moe: Option<u64>,
    /// `--cpu-moe`: every layer's experts stay in host memory.
    pub cpu_moe: bool,
    /// `-ot PATTERN=DEVICE,...`.
    pub override_tensor: Option<String>,
    pub no_mmap: bool,
    /// `--host-memory 64GiB`, or `none` to skip the host check; None = `machine_memory`.
    pub host_memory: Option<String>,
    /// ollama's scheduler: "llama-server" (today) or "estimate" (before its llama-server
    /// switch); see engine/ollama.rs.
    pub ollama_scheduler: String,
    /// The memory of the machine the command runs on, read by the caller (the CLI reads
    /// /proc/meminfo; None where unknown or not the requester's machine, as in the web API).
    pub machine_memory: Option<u64>,
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
            gpu: Vec::new(),
            gpus: None,
            tensor_split: None,
            split_mode: "layer".into(),
            main_gpu: 0,
            n_cpu_moe: None,
            cpu_moe: false,
            override_tensor: None,
            no_mmap: false,
            host_memory: None,
            ollama_scheduler: "llama-server".into(),
            machine_memory: None,
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

    /// The weights a GGUF conversion of `model` holds and their type mix: a llama-quantize file
    /// type named by `--quant` (q4_k_m, q3_k_s, iq4_xs…) is that quantizer's per-tensor mix
    /// (quant_mix.rs); another precision name is one type throughout; without `--quant`, an
    /// unquantized conversion keeps the checkpoint's 16-bit type (F16/BF16).
    pub fn weights(req: &Request, model: &ModelDesc) -> Result<(WeightFormat, TypeMix), String> {
        Self::weights_or(req, model, None)
    }

    /// `weights`, with the file type a runtime assumes when `--quant` is not given (ollama's
    /// library models are Q4_K_M files).
    pub fn weights_or(
        req: &Request,
        model: &ModelDesc,
        default_file_type: Option<&str>,
    ) -> Result<(WeightFormat, TypeMix), String> {
        let named = req.quant.as_deref().or(default_file_type);
        let file_mix = named.and_then(TypeMix::parse_file_type);
        let weights = match (named, &file_mix) {
            (_, Some(m)) => WeightFormat::Gguf(m.ffn),
            (Some(q), None) => weight_format(Some(q), model)?,
            (None, _) => match model.native_format() {
                WeightFormat::F32 | WeightFormat::F16 => WeightFormat::F16,
                _ => WeightFormat::Bf16,
            },
        };
        let mix = match file_mix {
            Some(m) => m,
            None => TypeMix::from_format(weights)?,
        };
        Ok((weights, mix))
    }

    /// The host memory checked like a GPU's: `--host-memory` when given (`none` skips the
    /// check), else the machine's.
    pub fn host_memory_bytes(&self) -> Result<Option<u64>, String> {
        match self.host_memory.as_deref() {
            Some(t) if t.trim().eq_ignore_ascii_case("none") => Ok(None),
            Some(t) => crate::units::parse_size(t)
                .map(Some)
                .map_err(|e| format!("--host-memory: {e}")),
            None => Ok(self.machine_memory),
        }
    }

    /// llama.cpp's devices: each `--gpu` given when there are several (catalogue GPUs, in
    /// llama.cpp's order), else `gpus` devices like `first` (the request's GPU).
    pub fn devices(&self, first: &Gpu) -> Result<Vec<Gpu>, String> {
        if self.gpu.len() > 1 {
            if self.gpus.is_some_and(|n| n != self.gpu.len() as u64) {
                return Err(format!(
                    "--gpus {} disagrees with the {} --gpu given; give one or make them agree",
                    self.gpus.unwrap_or(0),
                    self.gpu.len()
                ));
            }
            return self
                .gpu
                .iter()
                .map(|g| crate::catalogue().gpu(g).cloned())
                .collect();
        }
        let n = self.gpus.unwrap_or(1).clamp(1, 64);
        Ok(vec![first.clone(); n as usize])
    }

    /// The `Config`, type mix and `LlamaCppArgs` these flags ask for.
    pub fn resolve(
        &self,
        model: &ModelDesc,
        req: &Request,
    ) -> Result<(Config, TypeMix, LlamaCppArgs), String> {
        let (weights, mix) = Self::weights(req, model)?;
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
            tensor_split: match &self.tensor_split {
                Some(t) => devices::parse_tensor_split(t)?,
                None => Vec::new(),
            },
            split_mode: devices::SplitMode::parse(&self.split_mode)?,
            main_gpu: self.main_gpu,
            // --cpu-moe is --n-cpu-moe with every layer (common/arg.cpp).
            n_cpu_moe: if self.cpu_moe {
                u64::MAX
            } else {
                self.n_cpu_moe.unwrap_or(0)
            },
            tensor_overrides: match &self.override_tensor {
                Some(t) => devices::parse_tensor_overrides(t)?,
                None => Vec::new(),
            },
            use_mmap: !self.no_mmap,
            host_memory: self.host_memory_bytes()?,
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
