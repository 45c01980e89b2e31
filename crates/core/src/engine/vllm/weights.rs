//! What vLLM allocates beside the checkpoint's tensors, all counted in "Model loading took"
//! (vllm/v1/worker/gpu_model_runner.py `load_model` wraps the model, its LoRA slots and the
//! speculative drafter in one `DeviceMemoryProfiler`):
//!  - gpt-oss's MXFP4 experts in the layout of the MoE backend the GPU gets (padding, fp32
//!    biases);
//!  - LoRA slots: `max_loras` stacked A/B matrices of rank `max_lora_rank` on every linear layer;
//!  - the speculative drafter: a separate draft model, EAGLE heads or the model's own MTP layers.

use super::rules::Mxfp4Triton;
use super::Release;
use crate::gpu::Gpu;
use crate::model::ModelDesc;
use crate::parallel::{ExpertSplit, Parallelism};
use crate::precision::WeightFormat;
use crate::units::div_ceil;

/// gpt-oss (catalogue family "gpt-oss", config.json model_type "gpt_oss").
pub fn is_gpt_oss(model: &ModelDesc) -> bool {
    model.family.eq_ignore_ascii_case("gpt-oss") || model.family.eq_ignore_ascii_case("gpt_oss")
}

/// The MoE kernel family vLLM picks for MXFP4 experts, which decides their padding and bias
/// dtype (vllm/model_executor/layers/quantization/mxfp4.py `get_mxfp4_backend` up to 0.14,
/// vllm/model_executor/layers/fused_moe/oracle/mxfp4.py from 0.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mxfp4Backend {
    /// OpenAI's triton_kernels matmul_ogs: Hopper and consumer Blackwell (capability 9.x, 12.x)
    /// from vLLM 0.12, which builds triton_kernels in. Intermediate padded to 64, biases cast to
    /// fp32.
    Triton,
    /// FlashInfer TRT-LLM on data-centre Blackwell (capability 10.x): both sizes padded to 256.
    FlashInferSm100,
    /// Marlin: Ampere/Ada (capability < 9), and Hopper up to 0.11, whose installs lack
    /// triton_kernels (rule `mxfp4_triton`): intermediate padded to 128, hidden to 256.
    Marlin,
}

impl Mxfp4Backend {
    pub fn of(gpu: &Gpu, triton: Mxfp4Triton) -> Mxfp4Backend {
        let bundled = triton != Mxfp4Triton::NotBundled;
        match gpu.capability() {
            Some((10, _)) => Mxfp4Backend::FlashInferSm100,
            Some((major, _)) if major >= 9 && bundled => Mxfp4Backend::Triton,
            // Unknown capability (a custom GPU): the Hopper path.
            None if bundled => Mxfp4Backend::Triton,
            _ => Mxfp4Backend::Marlin,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mxfp4Backend::Triton => "triton (intermediate padded to 64, fp32 biases)",
            Mxfp4Backend::FlashInferSm100 => "flashinfer-trtllm (both padded to 256)",
            Mxfp4Backend::Marlin => "marlin (intermediate to 128, hidden to 256)",
        }
    }

    /// (intermediate multiple, hidden multiple, bias bytes): oracle/mxfp4.py
    /// `mxfp4_round_up_hidden_size_and_intermediate_size`; the Triton path casts the biases to
    /// float32 (`process_weights_after_loading`).
    fn layout(&self) -> (u64, u64, u64) {
        match self {
            Mxfp4Backend::Triton => (64, 1, 4),
            Mxfp4Backend::FlashInferSm100 => (256, 256, 2),
            Mxfp4Backend::Marlin => (128, 256, 2),
        }
    }
}

/// vLLM's bytes for one MoE layer's MXFP4 experts on one rank minus what the generic layout
/// (precision.rs: 17 B per 32 values, bf16 biases) counts for them. Experts are sharded over
/// TP along the intermediate size, or spread whole over TP × DP with expert parallelism.
/// On the Triton path of 0.12–0.33 the loaded e8m0 scales stay beside their swizzled copies
/// (rule `mxfp4_triton` = `BundledScalesKept`), a second set of scale bytes.
pub fn mxfp4_expert_delta(
    model: &ModelDesc,
    backend: Mxfp4Backend,
    par: &Parallelism,
    split: ExpertSplit,
    triton: Mxfp4Triton,
) -> i64 {
    let Some(moe) = &model.moe else { return 0 };
    let h = model.hidden_size;
    let (experts, inter) = match split {
        ExpertSplit::ExpertParallel { ep } => (
            div_ceil(moe.num_experts, ep.max(1)),
            moe.expert_intermediate_size,
        ),
        ExpertSplit::TensorParallel => (
            moe.num_experts,
            div_ceil(moe.expert_intermediate_size, par.tp.max(1)),
        ),
    };
    let generic = |rows: u64, cols: u64| div_ceil(rows * cols, 32) * 17;
    let bias_bytes_generic = if moe.expert_bias { 2 } else { 0 };
    let generic_layer = experts
        * (generic(2 * inter, h) + generic(h, inter) + (2 * inter + h) * bias_bytes_generic);
    let (im, hm, bias) = backend.layout();
    let (i2, h2) = (div_ceil(inter, im) * im, div_ceil(h, hm) * hm);
    let bias = if moe.expert_bias { bias } else { 0 };
    // w13: [E, 2I, H/2] values + [E, 2I, H/32] e8m0 scales; w2: [E, H, I/2] + [E, H, I/32].
    let vllm_layer = experts
        * (2 * i2 * (h2 / 2)
            + 2 * i2 * (h2 / 32)
            + h2 * (i2 / 2)
            + h2 * (i2 / 32)
            + (2 * i2 + h2) * bias);
    // The swizzled scales (triton_kernels' Hopper/Blackwell layout, a new tensor held by the
    // PrecisionConfig) are counted above at their loaded size, without the rows that layout
    // pads (not counted: the v3.5.0 layout code was not read); the loaded Parameters are kept.
    let kept_scales = if backend == Mxfp4Backend::Triton && triton == Mxfp4Triton::BundledScalesKept
    {
        experts * (2 * i2 * (h2 / 32) + h2 * (i2 / 32))
    } else {
        0
    };
    (vllm_layer + kept_scales) as i64 - generic_layer as i64
}

/// Mistral's multimodal models (Mistral Small 3.1, Pixtral) served as Mistral publishes them
/// (`--tokenizer-mode mistral --config-format mistral --load-format mistral`) load the Pixtral
/// vision encoder with plain `nn.Linear` layers: every TP rank holds all of it
/// (vllm/model_executor/models/pixtral.py `VisionTransformer`, `Attention`, `FeedForward`; the
/// Hugging Face-format `PixtralHFVisionModel` shards it instead). The bytes this adds per rank
/// over the TP-sharded count.
pub fn replicated_vision_extra(
    model: &ModelDesc,
    inv: &crate::model::Inventory,
    format: WeightFormat,
    tp: u64,
) -> u64 {
    let mistral = model
        .family
        .get(..7)
        .is_some_and(|f| f.eq_ignore_ascii_case("mistral"));
    let vision = model
        .towers
        .iter()
        .any(|t| t.kind == crate::model::TowerKind::Vision);
    if !vision || !mistral || tp < 2 {
        return 0;
    }
    let bytes =
        |t: &crate::model::Tensor, tp| crate::parallel::tensor_bytes_per_rank(t, format, tp);
    inv.global
        .iter()
        .filter(|(_, t)| t.role == crate::precision::Role::Vision)
        .map(|(_, t)| bytes(t, 1).saturating_sub(bytes(t, tp)))
        .sum()
}

/// `--enable-lora` with its sizes (vllm/config/lora.py: max_loras 1, max_lora_rank 16;
/// max_cpu_loras defaults to max_loras and lives in host memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lora {
    pub max_loras: u64,
    pub max_lora_rank: u64,
    pub max_cpu_loras: Option<u64>,
}

impl Default for Lora {
    fn default() -> Lora {
        Lora {
            max_loras: 1,
            max_lora_rank: 16,
            max_cpu_loras: None,
        }
    }
}

impl Lora {
    pub fn check(&self, model: &ModelDesc) -> Result<(), String> {
        if self.max_loras == 0 || self.max_loras > 1024 {
            return Err("--max-loras must be between 1 and 1024".into());
        }
        // vllm/config/lora.py MaxLoRARanks: 1, 8, 16, 32, 64, 128, 256, 320, 512.
        if ![1, 8, 16, 32, 64, 128, 256, 320, 512].contains(&self.max_lora_rank) {
            return Err(format!(
                "--max-lora-rank {} is not one vLLM accepts (1, 8, 16, 32, 64, 128, 256, 320, 512)",
                self.max_lora_rank
            ));
        }
        if self.max_cpu_loras.is_some_and(|c| c < self.max_loras) {
            return Err(
                "--max-cpu-loras must be at least --max-loras (vllm/config/lora.py)".into(),
            );
        }
        if model.moe.is_some() {
            return Err(format!(
                "{} is a mixture of experts: vLLM's LoRA on fused MoE experts (vllm/lora/layers/fused_moe.py) is not modelled; estimate without --enable-lora",
                model.id
            ));
        }
        if model.has_recurrent_layers() || model.mla.is_some() {
            return Err(format!(
                "{}: LoRA slots are modelled for standard attention and MLP projections only",
                model.id
            ));
        }
        Ok(())
    }

    /// GPU bytes of the LoRA slots on one rank over `layers` decoder layers (vllm/lora/layers
    /// `create_lora_weights`): every slot holds A [rank, input] and B [output, rank] in the
    /// model dtype. Column-parallel layers (qkv with three slices, gate_up with two) keep A whole
    /// and shard B's outputs; row-parallel layers (o_proj, down_proj) shard A's inputs and keep
    /// B whole. Up to 0.11 the embedding and head also grow by lora_extra_vocab_size = 256 rows.
    pub fn bytes(
        &self,
        model: &ModelDesc,
        tp: u64,
        layers: u64,
        dtype_bytes: u64,
        release: Release,
    ) -> u64 {
        let tp = tp.max(1);
        let (h, d) = (model.hidden_size, model.head_dim);
        let q = model.num_attention_heads * d;
        let kv = crate::kv::kv_heads_per_rank(model.num_kv_heads, tp) * d;
        let i = model.intermediate_size;
        let r = self.max_lora_rank;
        let gated = model.mlp == crate::model::MlpKind::Gated;
        let up_slices = if gated { 2 } else { 1 };
        let qkv = 3 * r * h + (q / tp + 2 * kv) * r;
        let o = r * div_ceil(q, tp) + h * r;
        let up = up_slices * r * h + up_slices * div_ceil(i, tp) * r;
        let down = r * div_ceil(i, tp) + h * r;
        let per_layer = (qkv + o + up + down) * self.max_loras * dtype_bytes;
        let extra_vocab = if release.minor <= 11 {
            let heads = if model.tie_embeddings { 1 } else { 2 };
            heads * 256 * h * dtype_bytes
        } else {
            0
        };
        per_layer.saturating_mul(layers).saturating_add(extra_vocab)
    }
}

/// `--speculative-config {"method": …, "model": …, "num_speculative_tokens": N}`.
#[derive(Debug, Clone, PartialEq)]
pub enum SpeculativeMethod {
    /// A separate, smaller model of the same tokenizer (method "draft_model", or a "model"
    /// without a method): its weights and its own KV layers (vllm/v1/spec_decode/draft_model.py).
    DraftModel(Box<ModelDesc>),
    /// EAGLE-1/EAGLE-3 heads: one decoder layer of the target's shape plus the fc that fuses
    /// hidden states (2·H → H for EAGLE, 3·H → H for EAGLE-3), embedding and head shared with
    /// the target (vllm/v1/spec_decode/eagle.py `load_model`).
    Eagle { eagle3: bool },
    /// The model's own multi-token-prediction layers (DeepSeek "deepseek_mtp", Qwen3-Next,
    /// MiMo: method "mtp"): `layers` decoder layers of the target's shape plus eh_proj (2·H → H)
    /// and two norms each (vllm/model_executor/models/deepseek_mtp.py).
    Mtp { layers: u64 },
    /// n-gram lookup: no weights, no KV.
    Ngram,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Speculative {
    pub method: SpeculativeMethod,
    pub num_speculative_tokens: u64,
}

impl Speculative {
    /// Weight bytes of the drafter on one rank (the drafter is TP-sharded like the target).
    pub fn weight_bytes(&self, target: &ModelDesc, format: WeightFormat, tp: u64) -> u64 {
        let par = Parallelism { tp, pp: 1, dp: 1 };
        match &self.method {
            SpeculativeMethod::Ngram => 0,
            SpeculativeMethod::DraftModel(d) => {
                let inv = d.inventory();
                let native = d.native_format();
                crate::parallel::weight_bytes_per_stage(d, inv, native, &par)[0]
            }
            SpeculativeMethod::Eagle { eagle3 } => {
                let fused = if *eagle3 { 3 } else { 2 };
                one_layer_bytes(target, format, tp) + fused * target.hidden_size.pow(2) * 2
            }
            SpeculativeMethod::Mtp { layers } => {
                layers
                    * (one_layer_bytes(target, format, tp)
                        + 2 * target.hidden_size.pow(2) * 2
                        + 2 * target.hidden_size * 2)
            }
        }
    }

    /// Attention layers the drafter adds to the KV cache of each worker (same page size as the
    /// target's for EAGLE and MTP; a draft model brings its own layers).
    pub fn kv_layers(&self) -> u64 {
        match &self.method {
            SpeculativeMethod::Ngram => 0,
            SpeculativeMethod::DraftModel(d) => d.num_layers,
            SpeculativeMethod::Eagle { .. } => 1,
            SpeculativeMethod::Mtp { layers } => *layers,
        }
    }

    pub fn describe(&self) -> String {
        match &self.method {
            SpeculativeMethod::Ngram => "ngram".into(),
            SpeculativeMethod::DraftModel(d) => format!("draft model {}", d.id),
            SpeculativeMethod::Eagle { eagle3: false } => "eagle (1 head layer)".into(),
            SpeculativeMethod::Eagle { eagle3: true } => "eagle3 (1 head layer)".into(),
            SpeculativeMethod::Mtp { layers } => format!("mtp ({layers} layer(s))"),
        }
    }
}

/// Bytes of the target's last decoder layer on one rank (the shape an EAGLE head or MTP layer
/// copies; for MoE models a MoE layer).
fn one_layer_bytes(model: &ModelDesc, format: WeightFormat, tp: u64) -> u64 {
    if model.num_layers == 0 {
        return 0;
    }
    model
        .layer(model.num_layers - 1)
        .tensors
        .iter()
        .map(|t| crate::parallel::tensor_bytes_per_rank(t, format, tp))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    #[test]
    fn lora_slots_by_hand() {
        // Llama-3.1-8B, TP 1, max_loras 1, rank 16, bf16, on 0.19 (no extra vocabulary):
        // qkv: A 3 × 16 × 4096 + B (4096 + 2 × 1024) × 16 = 196,608 + 98,304 = 294,912
        // o:   A 16 × 4096 + B 4096 × 16 = 131,072
        // gate_up: A 2 × 16 × 4096 + B 2 × 14,336 × 16 = 131,072 + 458,752 = 589,824
        // down: A 16 × 14,336 + B 4096 × 16 = 229,376 + 65,536 = 294,912
        // = 1,310,720 elements × 2 B = 2,621,440 B per layer; × 32 layers = 83,886,080 B (80 MiB).
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let r19 = Release::parse("0.19").unwrap();
        assert_eq!(Lora::default().bytes(m, 1, 32, 2, r19), 83_886_080);
        // 0.11 adds 256 extra vocabulary rows to the embedding and the (untied) head:
        // 2 × 256 × 4096 × 2 B = 4,194,304 B.
        let r11 = Release::parse("0.11").unwrap();
        assert_eq!(
            Lora::default().bytes(m, 1, 32, 2, r11),
            83_886_080 + 4_194_304
        );
        // Four slots of rank 64 scale it by 16.
        let big = Lora {
            max_loras: 4,
            max_lora_rank: 64,
            max_cpu_loras: None,
        };
        assert_eq!(big.bytes(m, 1, 32, 2, r19), 16 * 83_886_080);
    }

    #[test]
    fn mistral_vision_encoder_is_replicated_over_tp() {
        // Mistral Small 3.1 at TP 4: the 24-layer, 1024-wide Pixtral encoder (0.4B parameters)
        // on every rank: 3/4 of its matrices come back on each rank. Text-only models and TP 1
        // add nothing.
        let cat = catalogue();
        let m = cat
            .model("mistralai/Mistral-Small-3.1-24B-Instruct-2503")
            .unwrap();
        let inv = m.inventory();
        let four = replicated_vision_extra(m, inv, WeightFormat::Bf16, 4);
        let vision: u64 = inv
            .global
            .iter()
            .filter(|(_, t)| t.role == crate::precision::Role::Vision)
            .map(|(_, t)| crate::parallel::tensor_bytes_per_rank(t, WeightFormat::Bf16, 1))
            .sum();
        assert!(
            four > vision * 74 / 100 && four <= vision * 3 / 4,
            "{four} of {vision}"
        );
        assert_eq!(replicated_vision_extra(m, inv, WeightFormat::Bf16, 1), 0);
        let llama = cat.model("llama-3.1-8b").unwrap();
        assert_eq!(
            replicated_vision_extra(llama, llama.inventory(), WeightFormat::Bf16, 4),
            0
        );
    }

    #[test]
    fn lora_checks_ranks_and_models() {
        let cat = catalogue();
        let m = cat.model("llama-3.1-8b").unwrap();
        let mut l = Lora::default();
        assert!(l.check(m).is_ok());
        l.max_lora_rank = 24;
        assert!(l.check(m).unwrap_err().contains("24"));
        let moe = cat.model("mixtral-8x7b").unwrap();
        assert!(Lora::default().check(moe).unwrap_err().contains("mixture"));
    }

    #[test]
    fn mxfp4_backends_pad_as_the_oracle_says() {
        let cat = catalogue();
        let g = cat.model("gpt-oss-20b").unwrap();
        let h100 = cat.gpu("h100").unwrap();
        let triton = |v: &str| Release::parse(v).unwrap().rules().mxfp4_triton;
        // 0.12 builds triton_kernels in: Triton on Hopper.
        assert_eq!(Mxfp4Backend::of(h100, triton("0.12")), Mxfp4Backend::Triton);
        // 0.10 and 0.11 installs have no triton_kernels: Marlin on Hopper.
        for v in ["0.10.1", "0.10.2", "0.11.0", "0.11.2"] {
            assert_eq!(triton(v), Mxfp4Triton::NotBundled, "{v}");
            assert_eq!(
                Mxfp4Backend::of(h100, triton(v)),
                Mxfp4Backend::Marlin,
                "{v}"
            );
        }
        assert_eq!(triton("0.33"), Mxfp4Triton::BundledScalesKept);
        assert_eq!(triton("0.34"), Mxfp4Triton::BundledSharedStorage);
        assert_eq!(
            Mxfp4Backend::of(cat.gpu("a100-80gb").unwrap(), triton("0.19")),
            Mxfp4Backend::Marlin
        );
        assert_eq!(
            Mxfp4Backend::of(cat.gpu("b200").unwrap(), triton("0.11")),
            Mxfp4Backend::FlashInferSm100
        );
        let one = Parallelism::default();
        let tp = ExpertSplit::TensorParallel;
        let (kept, shared) = (
            Mxfp4Triton::BundledScalesKept,
            Mxfp4Triton::BundledSharedStorage,
        );
        // Triton on 0.34 (one storage per scale), TP 1: 2880 is a multiple of 64, so the only
        // change is the fp32 biases: 32 experts × (2 × 2880 + 2880) × (4 − 2) B = 552,960 B.
        assert_eq!(
            mxfp4_expert_delta(g, Mxfp4Backend::Triton, &one, tp, shared),
            552_960
        );
        // Triton on 0.12–0.33: plus the loaded e8m0 scales kept beside the swizzled ones,
        // 32 × (2·2880·2880/32 + 2880·2880/32) = 32 × (518,400 + 259,200) = 24,883,200 B per
        // layer; × 24 layers = 597,196,800 B = 0.556 GiB.
        assert_eq!(
            mxfp4_expert_delta(g, Mxfp4Backend::Triton, &one, tp, kept),
            552_960 + 24_883_200
        );
        // gpt-oss-120b at TP 2: 128 experts, I 2880/2 = 1440 padded to 1472 (multiple of 64).
        // Layout: 128 × (2·1472·1440 + 2·1472·90 + 2880·736 + 2880·46 + (2·1472 + 2880)·4)
        // = 867,811,328 B; generic: 128 × (17·2·1440·2880/32 + 17·2880·1440/32 + 5760·2)
        // = 847,503,360 B; kept scales 128 × (2·1472·90 + 2880·46) = 128 × (264,960 +
        // 132,480) = 50,872,320 B per layer.
        let g120 = cat.model("gpt-oss-120b").unwrap();
        let tp2 = Parallelism {
            tp: 2,
            ..Parallelism::default()
        };
        assert_eq!(
            mxfp4_expert_delta(g120, Mxfp4Backend::Triton, &tp2, tp, kept),
            867_811_328 - 847_503_360 + 50_872_320
        );
        // Other backends replace the Parameters: the rule does not touch them.
        assert_eq!(
            mxfp4_expert_delta(g, Mxfp4Backend::Marlin, &one, tp, kept),
            mxfp4_expert_delta(g, Mxfp4Backend::Marlin, &one, tp, shared)
        );
        // Marlin: I 2880 → 2944, H 2880 → 3072. Per expert: w13 2·2944·1536 + scales 2·2944·96
        // + w2 3072·1472 + scales 3072·92 + biases (2·2944 + 3072)·2 = 9,043,968 + 565,248 +
        // 4,521,984 + 282,624 + 17,920 = 14,431,744; generic: 17 × (5760·2880 + 2880·2880)/32 +
        // (5760 + 2880)·2 = 13,219,200 + 17,280 = 13,236,480. 32 × 1,195,264 = 38,248,448 B.
        assert_eq!(
            mxfp4_expert_delta(g, Mxfp4Backend::Marlin, &one, tp, shared),
            38_248_448
        );
    }

    #[test]
    fn eagle_and_mtp_heads_are_one_target_layer_plus_their_fc() {
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let eagle = Speculative {
            method: SpeculativeMethod::Eagle { eagle3: false },
            num_speculative_tokens: 3,
        };
        let layer = one_layer_bytes(m, WeightFormat::Bf16, 1);
        // One Llama-3.1-8B layer: q 16,777,216 + k, v 4,194,304 each + o 16,777,216 + MLP
        // 3 × 58,720,256 + 2 norms × 4096 = 218,112,000 params × 2 B = 436,224,000 B.
        assert_eq!(layer, 436_224_000);
        assert_eq!(
            eagle.weight_bytes(m, WeightFormat::Bf16, 1),
            layer + 2 * 4096 * 4096 * 2
        );
        assert_eq!(eagle.kv_layers(), 1);
    }
}
