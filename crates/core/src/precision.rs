//! Precisions: how many bytes a weight matrix or a KV-cache element takes in each storage format.
//! Each quantized layout is written as the tensors its checkpoint format actually stores, with
//! the format's source beside it, so that bytes are exact rather than "bits/8".

use crate::ggml::GgmlType;
use crate::units::{div_ceil, mul_ratio_ceil};
use std::fmt;

/// How the weights of a model are stored in GPU memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    F32,
    F16,
    Bf16,
    /// FP8 E4M3 weights. `block == 0`: one scale per output channel (compressed-tensors
    /// FP8-dynamic, neuralmagic/RedHatAI `*-FP8-dynamic`); `block > 0`: block-wise scales over
    /// block×block tiles stored as fp32 `weight_scale_inv` (DeepSeek-V3, Qwen3-FP8: 128).
    Fp8 {
        block: u32,
    },
    /// INT8 weights with one scale per output channel (compressed-tensors W8A8 `quantized.w8a8`).
    Int8,
    /// AWQ GEMM packing (AutoAWQ `WQLinear_GEMM`): qweight int32 [in, out/8], qzeros int32
    /// [in/g, out/8], scales fp16 [in/g, out].
    Awq {
        group: u32,
    },
    /// GPTQ (AutoGPTQ/optimum `QuantLinear`): qweight int32 [in·bits/32, out], qzeros int32
    /// [in/g, out·bits/32], scales fp16 [in/g, out], g_idx int32 [in].
    Gptq {
        bits: u8,
        group: u32,
    },
    /// compressed-tensors pack-quantized int4 (`quantized.w4a16`): weight_packed int32
    /// [out, in/8], weight_scale in the model dtype [out, in/g], weight_shape int64 [2]; symmetric.
    W4a16 {
        group: u32,
    },
    /// bitsandbytes NF4 (`Linear4bit`): 4-bit codes + one fp32 absmax per 64-weight block
    /// (bnb_4bit_use_double_quant = false, the transformers default).
    BnbNf4,
    /// bitsandbytes LLM.int8 (`Linear8bitLt`): int8 codes + fp32 row scale SCB [out].
    BnbInt8,
    /// OCP MXFP4 for MoE experts only, as gpt-oss ships it: 32 FP4 values (16 B) + one E8M0
    /// scale byte per block; all other tensors bf16.
    Mxfp4,
    /// A GGUF tensor type applied to every 2-D tensor, 1-D tensors kept F32 (llama-quant.cpp
    /// never quantizes 1-D tensors). Real GGUF files mix types: inspect a file for exact bytes.
    Gguf(GgmlType),
}

/// What a tensor is for; quantization schemes keep some roles in 16-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Embedding,
    LmHead,
    /// q, k, v, o and MLA projections.
    Attention,
    /// Dense MLP and shared-expert projections.
    Mlp,
    /// Routed-expert projections.
    Expert,
    /// MoE router (gate): kept unquantized by AWQ/GPTQ/compressed-tensors recipes.
    Router,
    /// Mamba in/out/x/dt projections.
    Ssm,
    /// Vision tower and projector: kept unquantized by the published recipes.
    Vision,
    /// Norm weights, biases, convolution kernels, learned positions, A_log/D: never quantized.
    Small,
}

impl WeightFormat {
    /// Parses the `--quant` names. Accepts GGUF type names (q4_0, q4_k, q8_0, ...).
    pub fn parse(text: &str) -> Result<WeightFormat, String> {
        let t = text.trim().to_ascii_lowercase();
        let f = match t.as_str() {
            "fp32" | "f32" | "float32" => WeightFormat::F32,
            "fp16" | "f16" | "float16" | "half" => WeightFormat::F16,
            "bf16" | "bfloat16" => WeightFormat::Bf16,
            "fp8" | "fp8-dynamic" | "f8" => WeightFormat::Fp8 { block: 0 },
            "fp8-block" => WeightFormat::Fp8 { block: 128 },
            "int8" | "w8a8" | "i8" => WeightFormat::Int8,
            "int4" | "awq" | "awq-int4" => WeightFormat::Awq { group: 128 },
            "gptq" | "gptq-int4" => WeightFormat::Gptq { bits: 4, group: 128 },
            "gptq-int8" => WeightFormat::Gptq { bits: 8, group: 128 },
            "w4a16" => WeightFormat::W4a16 { group: 128 },
            "nf4" | "bnb-nf4" | "bnb4" => WeightFormat::BnbNf4,
            "bnb-int8" | "bnb8" | "llm.int8" => WeightFormat::BnbInt8,
            "mxfp4" => WeightFormat::Mxfp4,
            other => match GgmlType::by_name(other) {
                Some(g) => WeightFormat::Gguf(g),
                None => {
                    return Err(format!(
                        "unknown precision '{text}'; use one of fp32, fp16, bf16, fp8, int8, awq (int4), gptq, gptq-int8, w4a16, nf4, bnb-int8, mxfp4, or a GGUF type such as q4_0, q4_k, q5_k, q6_k, q8_0"
                    ))
                }
            },
        };
        Ok(f)
    }

    /// Canonical short name, accepted back by `parse`.
    pub fn name(&self) -> String {
        match self {
            WeightFormat::F32 => "fp32".into(),
            WeightFormat::F16 => "fp16".into(),
            WeightFormat::Bf16 => "bf16".into(),
            WeightFormat::Fp8 { block: 0 } => "fp8".into(),
            WeightFormat::Fp8 { .. } => "fp8-block".into(),
            WeightFormat::Int8 => "int8".into(),
            WeightFormat::Awq { .. } => "awq".into(),
            WeightFormat::Gptq { bits: 8, .. } => "gptq-int8".into(),
            WeightFormat::Gptq { .. } => "gptq".into(),
            WeightFormat::W4a16 { .. } => "w4a16".into(),
            WeightFormat::BnbNf4 => "nf4".into(),
            WeightFormat::BnbInt8 => "bnb-int8".into(),
            WeightFormat::Mxfp4 => "mxfp4".into(),
            WeightFormat::Gguf(g) => g.name.to_ascii_lowercase(),
        }
    }

    /// Whether a tensor of this role is stored in the quantized layout. Embeddings, lm_head,
    /// routers, norms and vision towers stay in 16-bit for AWQ, GPTQ and compressed-tensors
    /// (their `modules_to_not_convert` / `ignore: ["lm_head"]`), and MXFP4 touches experts only.
    fn quantizes(&self, role: Role) -> bool {
        match self {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::Bf16 => false,
            WeightFormat::Mxfp4 => role == Role::Expert,
            WeightFormat::Gguf(_) => role != Role::Small,
            _ => matches!(role, Role::Attention | Role::Mlp | Role::Expert | Role::Ssm),
        }
    }

    /// Bytes of the unquantized tensors: the released dtype for 16-bit formats, bf16 beside
    /// the quantized layouts, F32 for 1-D tensors in GGUF.
    fn plain_bytes_per_element(&self) -> u64 {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::Gguf(_) => 4,
            _ => 2,
        }
    }

    /// Bytes a weight matrix of `rows` (output features) × `cols` (input features) takes.
    pub fn matrix_bytes(&self, role: Role, rows: u64, cols: u64) -> u64 {
        let n = rows.saturating_mul(cols);
        if !self.quantizes(role) {
            return match self {
                WeightFormat::Gguf(g) if role != Role::Small => {
                    g.row_bytes(cols).saturating_mul(rows)
                }
                _ => n.saturating_mul(self.plain_bytes_per_element()),
            };
        }
        let groups = |g: u32| div_ceil(cols, g as u64); // groups along the input dimension
        match *self {
            WeightFormat::F32 => n.saturating_mul(4),
            WeightFormat::F16 | WeightFormat::Bf16 => n.saturating_mul(2),
            WeightFormat::Fp8 { block: 0 } => n.saturating_add(rows.saturating_mul(2)),
            WeightFormat::Fp8 { block } => {
                let b = block as u64;
                n.saturating_add(
                    div_ceil(rows, b)
                        .saturating_mul(div_ceil(cols, b))
                        .saturating_mul(4),
                )
            }
            WeightFormat::Int8 => n.saturating_add(rows.saturating_mul(2)),
            WeightFormat::Awq { group } => {
                // n/2 (qweight) + groups·out/2 (qzeros) + groups·out·2 (scales)
                let g = groups(group).saturating_mul(rows);
                div_ceil(n, 2)
                    .saturating_add(div_ceil(g, 2))
                    .saturating_add(g.saturating_mul(2))
            }
            WeightFormat::Gptq { bits, group } => {
                let g = groups(group).saturating_mul(rows);
                let b = bits as u64;
                mul_ratio_ceil(n, b, 8)
                    .saturating_add(mul_ratio_ceil(g, b, 8))
                    .saturating_add(g.saturating_mul(2))
                    .saturating_add(cols.saturating_mul(4))
            }
            WeightFormat::W4a16 { group } => {
                let g = groups(group).saturating_mul(rows);
                div_ceil(n, 2)
                    .saturating_add(g.saturating_mul(2))
                    .saturating_add(16)
            }
            WeightFormat::BnbNf4 => {
                div_ceil(n, 2).saturating_add(div_ceil(n, 64).saturating_mul(4))
            }
            WeightFormat::BnbInt8 => n.saturating_add(rows.saturating_mul(4)),
            WeightFormat::Mxfp4 => div_ceil(n, 32).saturating_mul(17),
            WeightFormat::Gguf(g) => g.row_bytes(cols).saturating_mul(rows),
        }
    }

    /// Bytes of a 1-D tensor (norm weight, bias) of `n` elements.
    pub fn vector_bytes(&self, n: u64) -> u64 {
        n.saturating_mul(self.plain_bytes_per_element())
    }

    /// Storage bits per weight of a large quantized matrix (for display and roofline).
    pub fn nominal_bits(&self) -> f64 {
        let (r, c) = (8192u64, 8192u64);
        self.matrix_bytes(Role::Mlp, r, c) as f64 * 8.0 / (r * c) as f64
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// Element type of the KV cache. Quantized GGUF cache types are stored in blocks of 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvDtype {
    F32,
    F16,
    Bf16,
    /// vLLM `--kv-cache-dtype fp8` (e4m3/e5m2): one byte per element.
    Fp8,
    /// One byte per element (int8 KV in TensorRT-LLM/LMDeploy style).
    Int8,
    /// llama.cpp cache types (common/arg.cpp kv_cache_types): block layouts from ggml.
    Ggml(GgmlType),
}

impl KvDtype {
    pub fn parse(text: &str) -> Result<KvDtype, String> {
        let t = text.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "fp32" | "f32" => KvDtype::F32,
            "fp16" | "f16" | "auto" => KvDtype::F16,
            "bf16" => KvDtype::Bf16,
            "fp8" | "fp8_e4m3" | "fp8_e5m2" | "fp8-e4m3" | "fp8-e5m2" => KvDtype::Fp8,
            "int8" | "i8" => KvDtype::Int8,
            "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "iq4_nl" => {
                KvDtype::Ggml(GgmlType::by_name(&t).expect("listed ggml cache type"))
            }
            _ => {
                return Err(format!(
                    "unknown KV-cache dtype '{text}'; use one of fp16, bf16, fp8, int8, fp32, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl"
                ))
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            KvDtype::F32 => "fp32".into(),
            KvDtype::F16 => "fp16".into(),
            KvDtype::Bf16 => "bf16".into(),
            KvDtype::Fp8 => "fp8".into(),
            KvDtype::Int8 => "int8".into(),
            KvDtype::Ggml(g) => g.name.to_ascii_lowercase(),
        }
    }

    /// Bytes of one cached row of `n` elements (one token's K or V for one layer).
    pub fn row_bytes(&self, n: u64) -> u64 {
        match self {
            KvDtype::F32 => n.saturating_mul(4),
            KvDtype::F16 | KvDtype::Bf16 => n.saturating_mul(2),
            KvDtype::Fp8 | KvDtype::Int8 => n,
            KvDtype::Ggml(g) => g.row_bytes(n),
        }
    }
}

impl fmt::Display for KvDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awq_matrix_bytes_by_hand() {
        // 4096×4096, group 128: qweight 4096·4096/2 = 8,388,608; groups = 32 per row ×4096 rows
        // = 131,072 group-rows: qzeros 65,536, scales 262,144 → 8,716,288 bytes.
        let b = WeightFormat::Awq { group: 128 }.matrix_bytes(Role::Attention, 4096, 4096);
        assert_eq!(b, 8_388_608 + 65_536 + 262_144);
        // The embedding stays bf16: 128256×4096×2.
        let e = WeightFormat::Awq { group: 128 }.matrix_bytes(Role::Embedding, 128_256, 4096);
        assert_eq!(e, 1_050_673_152);
    }

    #[test]
    fn gptq_adds_g_idx() {
        // 4096×4096 4-bit g128: 8,388,608 + 65,536 + 262,144 + g_idx 4096·4 = 16,384.
        let b = WeightFormat::Gptq {
            bits: 4,
            group: 128,
        }
        .matrix_bytes(Role::Mlp, 4096, 4096);
        assert_eq!(b, 8_388_608 + 65_536 + 262_144 + 16_384);
    }

    #[test]
    fn gguf_types_and_kv_dtypes() {
        let q4 = WeightFormat::parse("q4_0").unwrap();
        // 4096×4096 at 18 B / 32 weights = 9,437,184 B.
        assert_eq!(q4.matrix_bytes(Role::Mlp, 4096, 4096), 9_437_184);
        assert_eq!(q4.vector_bytes(4096), 16_384); // norms F32
        assert_eq!(KvDtype::parse("q8_0").unwrap().row_bytes(1024), 1088); // 32 blocks × 34
        assert_eq!(KvDtype::parse("fp8").unwrap().row_bytes(1024), 1024);
        assert!(WeightFormat::parse("int3")
            .unwrap_err()
            .contains("unknown precision"));
        assert!(KvDtype::parse("q2_k").is_err());
    }

    #[test]
    fn names_round_trip() {
        for n in [
            "fp32", "fp16", "bf16", "fp8", "int8", "awq", "gptq", "w4a16", "nf4", "bnb-int8",
            "mxfp4", "q4_k", "q8_0",
        ] {
            assert_eq!(WeightFormat::parse(n).unwrap().name(), n);
        }
        for n in ["fp16", "bf16", "fp8", "int8", "fp32", "q8_0", "q4_0"] {
            assert_eq!(KvDtype::parse(n).unwrap().name(), n);
        }
    }
}
