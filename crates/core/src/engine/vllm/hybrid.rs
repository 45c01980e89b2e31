//! vLLM's hybrid KV-cache manager: how Mamba, Mamba-2, gated-delta-net, Kimi-delta, short-conv
//! and lightning-attention layers keep their per-sequence state in the same pages as the
//! attention layers' KV cache (docs/reference/vllm_releases.md §8).
//!
//! - State shapes per TP rank: `vllm/model_executor/layers/mamba/mamba_utils.py`
//!   `MambaStateShapeCalculator` (vllm-project/vllm@v0.19.0; the same from v0.10.2, where gated
//!   delta nets arrive): the conv state keeps `kernel − 1` columns (+ speculative tokens for
//!   Mamba-2 and gated delta nets), not transformers' `kernel`.
//! - Their dtypes: `MambaStateDtypeCalculator` (`--mamba-cache-dtype` for the conv state,
//!   `--mamba-ssm-cache-dtype` for the temporal state, "auto" = the model dtype / the conv's),
//!   with the model-specific defaults of `vllm/model_executor/models/config.py`
//!   (`NemotronHForCausalLMConfig` from v0.13.0, `Qwen3_5ForConditionalGenerationConfig` from
//!   v0.17.0).
//! - The page-size unification: `HybridAttentionMambaModelConfig.verify_and_update_config`
//!   (v0.10.0–v0.19.0, `vllm/model_executor/models/config.py`) and
//!   `Platform._align_hybrid_block_size` (v0.20.0+, `vllm/platforms/interface.py`): the
//!   attention block size is raised until one attention page holds a state page, and the
//!   state page is padded to the attention page (`mamba_page_size_padded`).
//! - The per-sequence state in blocks: `MambaSpec.max_memory_usage_bytes`
//!   (`vllm/v1/kv_cache_interface.py`): one page (+ one per speculative token) in mode
//!   "none", two (+ spec) in "align", one per block of the context in "all".

use super::rules::{HfSsmDtype, HybridAlignment, HybridPrefixCaching, Rules};
use crate::layer::{Recurrent, RecurrentKind};
use crate::model::ModelDesc;
use crate::units::div_ceil;

/// `--mamba-cache-mode` (vllm/config/cache.py `MambaCacheMode`, 0.16+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MambaCacheMode {
    /// No prefix caching of the state: one state per running sequence.
    None,
    /// Prefix caching: the state at every block boundary (Mamba/Mamba-2 models).
    All,
    /// Prefix caching: the state at the last scheduled token, in two pages.
    Align,
}

impl MambaCacheMode {
    pub fn parse(text: &str) -> Result<MambaCacheMode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(MambaCacheMode::None),
            "all" => Ok(MambaCacheMode::All),
            "align" => Ok(MambaCacheMode::Align),
            _ => Err(format!(
                "--mamba-cache-mode '{text}': use none, all or align (vllm/config/cache.py MambaCacheMode)"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            MambaCacheMode::None => "none",
            MambaCacheMode::All => "all",
            MambaCacheMode::Align => "align",
        }
    }
}

/// `--mamba-cache-dtype` / `--mamba-ssm-cache-dtype` (vllm/config/cache.py `MambaDType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MambaDtype {
    #[default]
    Auto,
    Float32,
    Float16,
}

impl MambaDtype {
    pub fn parse(flag: &str, text: &str) -> Result<MambaDtype, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(MambaDtype::Auto),
            "float32" | "fp32" => Ok(MambaDtype::Float32),
            "float16" | "fp16" | "half" => Ok(MambaDtype::Float16),
            _ => Err(format!(
                "{flag} '{text}': use auto, float32 or float16 (vllm/config/cache.py MambaDType)"
            )),
        }
    }

    fn bytes(&self) -> Option<u64> {
        match self {
            MambaDtype::Auto => None,
            MambaDtype::Float32 => Some(4),
            MambaDtype::Float16 => Some(2),
        }
    }
}

/// The hybrid-model flags as given (None = the release's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HybridFlags {
    pub mamba_cache_dtype: MambaDtype,
    pub mamba_ssm_cache_dtype: MambaDtype,
    pub mamba_cache_mode: Option<MambaCacheMode>,
    /// `--enable-prefix-caching` / `--no-enable-prefix-caching`.
    pub prefix_caching: Option<bool>,
}

/// How a hybrid (or attention-free) model's state is laid out on one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLayout {
    /// The mode in force after vLLM's defaults and fallbacks.
    pub mode: MambaCacheMode,
    /// State bytes of one layer for one sequence on one TP rank (`MambaSpec.page_size_bytes`
    /// before padding).
    pub state_page: u64,
    /// Attention block size after the unification (tokens); the state layers' own block size
    /// in mode "none" is max_model_len.
    pub block_size: u64,
    /// Speculative tokens (each adds a state page per sequence, `num_speculative_blocks`).
    pub speculative_blocks: u64,
}

impl StateLayout {
    /// Blocks of one state group one request holds (`MambaSpec.max_memory_usage_bytes` ÷ page).
    pub fn blocks_per_request(&self, len: u64) -> u64 {
        match self.mode {
            MambaCacheMode::None => 1 + self.speculative_blocks,
            MambaCacheMode::Align => 2 + self.speculative_blocks,
            MambaCacheMode::All => div_ceil(len, self.block_size),
        }
    }

    /// The state groups' block size ("none": max_model_len, `MambaModelConfig`; else the
    /// attention block), for the "GPU KV cache size" line's minimum block size.
    pub fn state_block_size(&self, max_model_len: u64) -> u64 {
        match self.mode {
            MambaCacheMode::None => max_model_len,
            _ => self.block_size,
        }
    }
}

/// Whether vLLM's model class takes Mamba prefix caching in mode "all"
/// (`SupportsMambaPrefixCaching`, @v0.19.0: bamba, falcon_h1, granitemoehybrid, jamba, mamba,
/// mamba2, nemotron_h, zamba2: the Mamba and Mamba-2 mixers); the others fall back to "align".
fn supports_all(kind: RecurrentKind) -> bool {
    matches!(kind, RecurrentKind::Mamba | RecurrentKind::Mamba2)
}

/// The mamba cache mode vLLM ends up with (`MambaModelConfig.verify_and_update_config`).
pub fn cache_mode(
    rules: &Rules,
    flags: &HybridFlags,
    kind: RecurrentKind,
    attention_free: bool,
) -> Result<MambaCacheMode, String> {
    let prefix = match rules.hybrid_prefix_caching {
        // Attention-free models (Mamba, Mamba-2 alone) never default to prefix caching
        // (@v0.26.0:vllm/config/model.py is_prefix_caching_supported: False for
        // "attention_free"); from 0.12 it can be asked for.
        HybridPrefixCaching::OffByDefault
        | HybridPrefixCaching::OffByDefaultModes
        | HybridPrefixCaching::OnByDefault
            if attention_free =>
        {
            flags.prefix_caching.unwrap_or(false)
        }
        // v0.10.2–v0.11.x: "Hybrid or mamba-based model detected: disabling prefix caching".
        HybridPrefixCaching::ForcedOff => false,
        HybridPrefixCaching::OffByDefault | HybridPrefixCaching::OffByDefaultModes => {
            flags.prefix_caching.unwrap_or(false)
        }
        HybridPrefixCaching::OnByDefault => flags.prefix_caching.unwrap_or(true),
    };
    let modes = matches!(
        rules.hybrid_prefix_caching,
        HybridPrefixCaching::OffByDefaultModes | HybridPrefixCaching::OnByDefault
    );
    if flags.mamba_cache_mode.is_some() && !modes {
        return Err("--mamba-cache-mode arrives in vLLM 0.16 (vllm/config/cache.py); earlier releases decide from --enable-prefix-caching".into());
    }
    if !prefix {
        // "Mamba cache mode is set to 'none' when prefix caching is disabled".
        return Ok(MambaCacheMode::None);
    }
    if !modes {
        // v0.12–v0.15: prefix caching stays on only for models that support it (mode "all").
        return Ok(if supports_all(kind) {
            MambaCacheMode::All
        } else {
            MambaCacheMode::None
        });
    }
    Ok(match flags.mamba_cache_mode {
        None | Some(MambaCacheMode::None) if supports_all(kind) => MambaCacheMode::All,
        None | Some(MambaCacheMode::None) => MambaCacheMode::Align,
        Some(MambaCacheMode::All) if !supports_all(kind) => MambaCacheMode::Align,
        Some(m) => m,
    })
}

fn divide(what: &str, n: u64, tp: u64) -> Result<u64, String> {
    if tp == 0 || !n.is_multiple_of(tp) {
        return Err(format!(
            "vLLM and SGLang shard the {what} ({n}) over the TP ranks and need it divisible by the TP size {tp} (mamba_utils.py divide); choose a TP size that divides it"
        ));
    }
    Ok(n / tp)
}

/// Bytes of one layer's state for one sequence on one of `tp` ranks, as vLLM allocates it
/// (`MambaSpec.page_size_bytes`, unpadded). `model_dtype_bytes` is the serving dtype's.
pub fn state_page_bytes(
    model: &ModelDesc,
    rec: &Recurrent,
    tp: u64,
    model_dtype_bytes: u64,
    flags: &HybridFlags,
    rules: &Rules,
    num_spec: u64,
) -> Result<u64, String> {
    let conv_bytes = flags.mamba_cache_dtype.bytes().unwrap_or(model_dtype_bytes);
    // The temporal (SSM) state: --mamba-ssm-cache-dtype, else the model's own default.
    let hf_default = match rules.hf_ssm_dtype {
        HfSsmDtype::None => None,
        HfSsmDtype::NemotronH | HfSsmDtype::NemotronHQwen35
            if model.model_type.starts_with("nemotron_h") =>
        {
            Some(rec.config_ssm_dtype_bytes.unwrap_or(2))
        }
        HfSsmDtype::NemotronHQwen35 if model.model_type.starts_with("qwen3_5") => {
            rec.config_ssm_dtype_bytes
        }
        _ => None,
    };
    let ssm_bytes = flags
        .mamba_ssm_cache_dtype
        .bytes()
        .or(hf_default)
        .unwrap_or(conv_bytes);
    if rec.kind == RecurrentKind::Lightning && flags.mamba_cache_dtype == MambaDtype::Float32 {
        return Err("vLLM refuses --mamba-cache-dtype float32 for lightning attention (\"fp32 state for minimax is not yet supported\", mamba_utils.py): use auto or float16".into());
    }
    state_bytes(model, rec, tp, conv_bytes, ssm_bytes, num_spec)
}

/// Bytes of one layer's state for one sequence on one of `tp` ranks with the conv state in
/// `conv_bytes` and the temporal (SSM) state in `ssm_bytes` per element. The shapes are the same
/// in vLLM (`MambaStateShapeCalculator`, @v0.19.0) and SGLang (`Mamba2StateShape.create`,
/// sgl-project/sglang@v0.5.4..v0.5.23:python/sglang/srt/configs/mamba_utils.py: conv
/// `(conv_dim/tp, kernel − 1)` with groups replicated to follow the head shards, temporal
/// `(heads/tp, head_dim, state_size)`; Qwen3-Next passes its gated delta net as Mamba-2 with
/// groups = key heads and state_size = key head dim), so both engines use this one function.
pub fn state_bytes(
    model: &ModelDesc,
    rec: &Recurrent,
    tp: u64,
    conv_bytes: u64,
    ssm_bytes: u64,
    num_spec: u64,
) -> Result<u64, String> {
    let dims = |i: usize| -> &[u64] { rec.states.get(i).map_or(&[], |s| s.shape.as_slice()) };
    let dim = |i: usize, j: usize| dims(i).get(j).copied().unwrap_or(0);
    Ok(match rec.kind {
        RecurrentKind::Mamba => {
            // mamba1_state_shape: conv (k − 1, di/tp), temporal (di/tp, n).
            let (di, k, n) = (dim(0, 0), dim(0, 1), dim(1, 1));
            let di = divide("Mamba inner width", di, tp)?;
            k.saturating_sub(1) * di * conv_bytes + di * n * ssm_bytes
        }
        RecurrentKind::Mamba2 => {
            // mamba2_state_shape: groups replicated to follow the head shards; conv
            // (k − 1 + spec, (di + 2·groups·n)/tp), temporal (heads/tp, head_dim, n).
            let (conv_dim, k) = (dim(0, 0), dim(0, 1));
            let (heads, head_dim, n) = (dim(1, 0), dim(1, 1), dim(1, 2));
            let g = rec.groups;
            let extra = if g.is_multiple_of(tp.max(1)) { 0 } else { tp.saturating_sub(g) };
            let conv_dim = conv_dim + 2 * extra * n;
            let conv_dim = divide("Mamba-2 conv width", conv_dim, tp)?;
            let heads = divide("Mamba-2 heads", heads, tp)?;
            (k.saturating_sub(1) + num_spec) * conv_dim * conv_bytes + heads * head_dim * n * ssm_bytes
        }
        RecurrentKind::GatedDeltaNet => {
            // gated_delta_net_state_shape: conv (k − 1 + spec, conv_dim/tp), temporal
            // (v_heads/tp, v_dim, k_dim).
            let (conv_dim, k) = (dim(0, 0), dim(0, 1));
            let (vh, kd, vd) = (dim(1, 0), dim(1, 1), dim(1, 2));
            let conv_dim = divide("gated-delta-net conv width", conv_dim, tp)?;
            let vh = divide("gated-delta-net value heads", vh, tp)?;
            (k.saturating_sub(1) + num_spec) * conv_dim * conv_bytes + vh * vd * kd * ssm_bytes
        }
        RecurrentKind::KimiDelta => {
            // kda_state_shape: three convs (k − 1, H·d/tp) in the cache dtype and the
            // recurrent state (H/tp, d, d) in float32 (kda_state_dtype).
            let (conv3, k) = (dim(0, 0), dim(0, 1));
            let (heads, d) = (dim(1, 0), dim(1, 1));
            let conv = divide("Kimi-delta projection width", conv3 / 3, tp)?;
            let heads = divide("Kimi-delta heads", heads, tp)?;
            3 * k.saturating_sub(1) * conv * conv_bytes + heads * d * d * 4
        }
        RecurrentKind::ShortConv => {
            // short_conv_state_shape: (L − 1, hidden/tp).
            let (h, l) = (dim(0, 0), dim(0, 1));
            l.saturating_sub(1) * divide("short-conv width", h, tp)? * conv_bytes
        }
        RecurrentKind::Lightning => {
            // linear_attention_state_shape: (heads/tp, d, d) in --mamba-cache-dtype (vLLM
            // refuses float32 for it, checked in state_page_bytes).
            let (heads, d) = (dim(0, 0), dim(0, 1));
            (heads / tp.max(1)) * d * d * conv_bytes
        }
        other => {
            return Err(format!(
                "{} has {} layers, which vLLM does not serve (no model class keeps that state); use --engine generic",
                model.id,
                other.name()
            ))
        }
    })
}

/// The unified attention block size (tokens) for attention pages of `attn_page_1_token` bytes
/// per token holding a state page of `state_page` bytes.
pub fn unified_block_size(
    rules: &Rules,
    mla: bool,
    mode: MambaCacheMode,
    attn_page_1_token: u64,
    state_page: u64,
    block: u64,
    chunk: Option<u64>,
) -> u64 {
    if attn_page_1_token == 0 || state_page == 0 {
        return block;
    }
    // The kernel alignment: 16 (FlashAttention) through 0.11; from 0.12 64 for MLA (128 with
    // CUTLASS MLA, not modelled); from 0.20 max(the backend's smallest kernel block, the
    // block size), which is the same on CUDA's default backends.
    let align = match rules.hybrid_alignment {
        HybridAlignment::Sixteen => 16,
        HybridAlignment::Backend if mla => 64,
        HybridAlignment::Backend => 16,
    };
    let needed = match mode {
        MambaCacheMode::All => {
            // lcm(chunk, alignment) × ceil(tokens per state / that); Mamba-1 has no chunk:
            // 2048 (vllm/config/model.py get_mamba_chunk_size).
            let base = chunk.unwrap_or(2048);
            let unit = lcm(base, align);
            unit * div_ceil(div_ceil(state_page, attn_page_1_token), unit)
        }
        _ => align * div_ceil(state_page, align * attn_page_1_token),
    };
    block.max(needed)
}

fn lcm(a: u64, b: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    if a == 0 || b == 0 {
        return a.max(b);
    }
    a / gcd(a, b) * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcm_and_modes() {
        assert_eq!(lcm(256, 16), 256);
        assert_eq!(lcm(100, 16), 400);
        assert_eq!(
            MambaCacheMode::parse("ALIGN").unwrap(),
            MambaCacheMode::Align
        );
        assert!(MambaCacheMode::parse("some").is_err());
        assert_eq!(
            MambaDtype::parse("--mamba-cache-dtype", "float32").unwrap(),
            MambaDtype::Float32
        );
        assert!(MambaDtype::parse("--mamba-cache-dtype", "bfloat16").is_err());
    }
}
