//! GGUF quantization mixes by name: which ggml type each tensor of a file gets when llama.cpp's
//! quantizer writes a `Q4_K_M`, `Q3_K_S`, `IQ4_XS`… file. A port of the type-selection rules
//! of src/llama-quant.cpp at ggml-org/llama.cpp@0c1e57098 (the revision of the harness in
//! scripts/llamacpp_truth): `tensor_allows_quantization`, `tensor_get_category`,
//! `llama_tensor_get_type_impl`, `tensor_type_fallback`, `llama_ftype_get_default_type` and the
//! order the quantizer visits tensors in (`weights_map`, llama-model-loader.h
//! `weight_name_comparer`: by layer number, then by name), which the attn_v counter depends on.
//! Checked tensor by tensor against files that llama.cpp's own quantizer wrote
//! (data/calibration/llamacpp_truth/quantize.jsonl).

use crate::ggml::GgmlType;

const QUANT: &str = "src/llama-quant.cpp";

/// A llama.cpp file type (`enum llama_ftype`, include/llama.h): the `--quant` names of
/// llama-quantize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ftype {
    /// `LLAMA_FTYPE_MOSTLY_*` value (also `general.file_type` in a GGUF).
    pub id: u32,
    pub name: &'static str,
}

/// Every file type the quantizer writes (include/llama.h `enum llama_ftype`).
pub const FTYPES: &[Ftype] = &[
    Ftype { id: 0, name: "F32" },
    Ftype { id: 1, name: "F16" },
    Ftype {
        id: 2,
        name: "Q4_0",
    },
    Ftype {
        id: 3,
        name: "Q4_1",
    },
    Ftype {
        id: 7,
        name: "Q8_0",
    },
    Ftype {
        id: 8,
        name: "Q5_0",
    },
    Ftype {
        id: 9,
        name: "Q5_1",
    },
    Ftype {
        id: 10,
        name: "Q2_K",
    },
    Ftype {
        id: 11,
        name: "Q3_K_S",
    },
    Ftype {
        id: 12,
        name: "Q3_K_M",
    },
    Ftype {
        id: 13,
        name: "Q3_K_L",
    },
    Ftype {
        id: 14,
        name: "Q4_K_S",
    },
    Ftype {
        id: 15,
        name: "Q4_K_M",
    },
    Ftype {
        id: 16,
        name: "Q5_K_S",
    },
    Ftype {
        id: 17,
        name: "Q5_K_M",
    },
    Ftype {
        id: 18,
        name: "Q6_K",
    },
    Ftype {
        id: 19,
        name: "IQ2_XXS",
    },
    Ftype {
        id: 20,
        name: "IQ2_XS",
    },
    Ftype {
        id: 21,
        name: "Q2_K_S",
    },
    Ftype {
        id: 22,
        name: "IQ3_XS",
    },
    Ftype {
        id: 23,
        name: "IQ3_XXS",
    },
    Ftype {
        id: 24,
        name: "IQ1_S",
    },
    Ftype {
        id: 25,
        name: "IQ4_NL",
    },
    Ftype {
        id: 26,
        name: "IQ3_S",
    },
    Ftype {
        id: 27,
        name: "IQ3_M",
    },
    Ftype {
        id: 28,
        name: "IQ2_S",
    },
    Ftype {
        id: 29,
        name: "IQ2_M",
    },
    Ftype {
        id: 30,
        name: "IQ4_XS",
    },
    Ftype {
        id: 31,
        name: "IQ1_M",
    },
    Ftype {
        id: 32,
        name: "BF16",
    },
    Ftype {
        id: 38,
        name: "MXFP4_MOE",
    },
];

fn t(name: &str) -> GgmlType {
    GgmlType::by_name(name).expect("ggml type in the table")
}

impl Ftype {
    /// A file-type name as llama-quantize takes it (`q4_k_m`, `Q4_K_M`, `iq4_xs`,
    /// `mxfp4_moe`); `q4_k` and `q5_k` name the `_M` mixes, as llama-quantize's aliases do
    /// (tools/quantize/quantize.cpp: "Q4_K: alias for Q4_K_M").
    pub fn parse(text: &str) -> Option<Ftype> {
        let up = text.trim().to_ascii_uppercase().replace('-', "_");
        let up = match up.as_str() {
            "Q4_K" => "Q4_K_M".to_string(),
            "Q5_K" => "Q5_K_M".to_string(),
            "Q3_K" => "Q3_K_M".to_string(),
            "MXFP4" => "MXFP4_MOE".to_string(),
            _ => up,
        };
        FTYPES.iter().copied().find(|f| f.name == up)
    }

    pub fn by_id(id: u32) -> Option<Ftype> {
        FTYPES.iter().copied().find(|f| f.id == id)
    }

    fn is(&self, name: &str) -> bool {
        self.name == name
    }

    fn any(&self, names: &[&str]) -> bool {
        names.contains(&self.name)
    }

    /// The type most tensors get (`llama_ftype_get_default_type`).
    pub fn default_type(&self) -> GgmlType {
        t(match self.name {
            "Q2_K_S" | "Q2_K" => "Q2_K",
            "IQ3_XS" => "IQ3_S",
            "Q3_K_S" | "Q3_K_M" | "Q3_K_L" => "Q3_K",
            "Q4_K_S" | "Q4_K_M" => "Q4_K",
            "Q5_K_S" | "Q5_K_M" => "Q5_K",
            "IQ2_S" => "IQ2_XS",
            "IQ2_M" => "IQ2_S",
            "IQ3_S" | "IQ3_M" => "IQ3_S",
            "MXFP4_MOE" => "MXFP4",
            other => other,
        })
    }
}

/// The model facts the rules read (llama_hparams and llama_model::type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantModel {
    /// `general.architecture` (the rules single out falcon).
    pub arch: String,
    pub n_expert: u64,
    /// n_head / n_head_kv of layer 0 (`hparams.n_gqa()`).
    pub n_gqa: u64,
    /// Layers, MTP/NextN layers included (`n_layer_all`).
    pub n_layer: u64,
    /// Whether llama.cpp types the model LLM_TYPE_70B (load_arch_hparams: 80-layer llama and
    /// qwen2); its attn_v gets Q5_K instead of Q3_K/Q4_K.
    pub is_70b: bool,
}

/// One tensor of the file being quantized: its GGUF name, shape (ne, innermost first) and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensor {
    pub name: String,
    pub ne: Vec<u64>,
    pub ty: GgmlType,
}

impl GgufTensor {
    pub fn rows(&self) -> u64 {
        self.ne.iter().skip(1).product::<u64>().max(1)
    }
    pub fn bytes_as(&self, ty: GgmlType) -> u64 {
        ty.row_bytes(self.ne.first().copied().unwrap_or(0))
            .saturating_mul(self.rows())
    }
    fn n_dims(&self) -> usize {
        // ggml_n_dims: trailing dimensions of 1 do not count.
        let mut n = self.ne.len();
        while n > 1 && self.ne[n - 1] == 1 {
            n -= 1;
        }
        n.max(1)
    }
    fn layer(&self) -> Option<i64> {
        self.name
            .strip_prefix("blk.")?
            .split('.')
            .next()?
            .parse()
            .ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttentionQ,
    AttentionV,
    AttentionK,
    AttentionQkv,
    AttentionKvB,
    AttentionOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

/// `tensor_get_category` (substring tests in this order).
fn category(name: &str) -> Category {
    use Category::*;
    if name == "output.weight" {
        return Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return TokenEmbd;
    }
    for (needle, c) in [
        ("attn_qkv.weight", AttentionQkv),
        ("attn_kv_b.weight", AttentionKvB),
        ("attn_v.weight", AttentionV),
        ("attn_k.weight", AttentionK),
        ("attn_q.weight", AttentionQ),
        ("attn_output.weight", AttentionOutput),
        ("ffn_up", FfnUp),
        ("ffn_gate", FfnGate),
        ("ffn_down", FfnDown),
    ] {
        if name.contains(needle) {
            return c;
        }
    }
    Other
}

fn is_attn_v(c: Category) -> bool {
    matches!(
        c,
        Category::AttentionV | Category::AttentionQkv | Category::AttentionKvB
    )
}

/// `tensor_allows_quantization` for the default parameters (quantize_output_tensor on,
/// only_copy off), for the architectures the harness covers (the RWKV, T5, BERT, GLM5 and
/// multimodal exclusions concern tensors those models alone have, and are kept by name).
fn allows_quantization(tn: &GgufTensor) -> bool {
    let name = tn.name.as_str();
    if tn.n_dims() < 2 || !name.ends_with("weight") {
        return false;
    }
    const KEEP: &[&str] = &[
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    if KEEP.iter().any(|k| name.contains(k)) {
        return false;
    }
    // LLM_TN(arch)(LLM_TENSOR_POS_EMBD / TOKEN_TYPES, "weight").
    name != "position_embd.weight" && name != "token_types.weight"
}

/// Counters the rules keep while visiting tensors (`quantize_state_impl`).
struct State<'a> {
    model: &'a QuantModel,
    has_imatrix: bool,
    tied: bool,
    n_attention_wv: i64,
    i_attention_wv: i64,
    n_ffn: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

impl State<'_> {
    /// `layer_info`: with experts the layer comes from the name (experts are not visited in
    /// layer order), else the running counter.
    fn layer_info(&self, counter: i64, tn: &GgufTensor) -> Result<(i64, i64), String> {
        if self.model.n_expert > 1 {
            let l = tn
                .layer()
                .ok_or_else(|| format!("Failed to determine layer for tensor {}", tn.name))?;
            if l < 0 || l >= self.n_ffn {
                return Err(format!("Bad layer {l} for tensor {}", tn.name));
            }
            return Ok((l, self.n_ffn));
        }
        Ok((counter, self.n_ffn))
    }

    /// `llama_tensor_get_type_impl`.
    fn choose(
        &mut self,
        mut new: GgmlType,
        tn: &GgufTensor,
        ft: Ftype,
        cat: Category,
    ) -> Result<GgmlType, String> {
        use Category::*;
        let m = self.model;
        let falcon = m.arch == "falcon";
        let n_expert = m.n_expert;
        let gqa = m.n_gqa;
        let iq_low = ["IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"];
        if cat == Output || (self.tied && cat == TokenEmbd) {
            let nx = tn.ne.first().copied().unwrap_or(0);
            if ft.is("MXFP4_MOE") || falcon || !nx.is_multiple_of(new.block as u64) {
                new = t("Q8_0");
            } else if ft.any(&[
                "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M",
            ]) {
                new = t("Q5_K");
            } else if new != t("Q8_0") {
                new = t("Q6_K");
            }
        } else if ft.is("MXFP4_MOE") {
            // Experts (3-D) to MXFP4, everything else Q8_0.
            new = if tn.ne.get(2).copied().unwrap_or(1) > 1 {
                t("MXFP4")
            } else {
                t("Q8_0")
            };
        } else if cat == TokenEmbd {
            if ft.any(&["IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"]) {
                new = t("Q2_K");
            } else if ft.any(&["IQ2_S", "IQ2_M", "IQ3_XXS"]) {
                new = t("IQ3_S");
            }
        } else if ft.any(&iq_low) {
            let s_or_m = ft.any(&["IQ2_S", "IQ2_M"]);
            if is_attn_v(cat) {
                new = if gqa >= 4 || n_expert >= 4 {
                    t("Q4_K")
                } else if s_or_m {
                    t("IQ3_S")
                } else {
                    t("Q2_K")
                };
                self.i_attention_wv += 1;
            } else if n_expert == 8 && cat == AttentionK {
                new = t("Q4_K");
            } else if cat == FfnDown {
                if self.i_ffn_down < self.n_ffn / 8 {
                    new = if s_or_m { t("IQ3_S") } else { t("Q2_K") };
                }
                self.i_ffn_down += 1;
            } else if cat == AttentionOutput {
                if n_expert == 8 {
                    new = t("Q5_K");
                } else if ft.any(&["IQ1_S", "IQ1_M"]) {
                    new = t("IQ2_XXS");
                } else if s_or_m {
                    new = t("IQ3_S");
                }
            }
        } else if is_attn_v(cat) {
            if ft.is("Q2_K") {
                new = if gqa >= 4 { t("Q4_K") } else { t("Q3_K") };
            } else if ft.is("Q2_K_S") && gqa >= 4 {
                new = t("Q4_K");
            } else if ft.is("IQ3_XXS") {
                new = if gqa >= 4 {
                    t("Q4_K")
                } else if !self.has_imatrix {
                    t("IQ3_S")
                } else {
                    t("IQ3_XXS")
                };
            } else if (ft.any(&["IQ3_XS", "IQ3_S"]) && gqa >= 4) || ft.is("IQ3_M") {
                new = t("Q4_K");
            } else if ft.is("Q3_K_M") {
                new = if self.i_attention_wv < 2 {
                    t("Q5_K")
                } else {
                    t("Q4_K")
                };
            } else if ft.is("Q3_K_L") || (ft.any(&["IQ4_NL", "IQ4_XS"]) && gqa >= 4) {
                new = t("Q5_K");
            } else if ft.any(&["Q4_K_M", "Q5_K_M"])
                && use_more_bits(self.i_attention_wv, self.n_attention_wv)
            {
                new = t("Q6_K");
            } else if ft.is("Q4_K_S") && self.i_attention_wv < 4 {
                new = t("Q5_K");
            }
            if m.is_70b && (new == t("Q3_K") || new == t("Q4_K")) {
                new = t("Q5_K");
            }
            if n_expert == 8 {
                new = t("Q8_0");
            }
            self.i_attention_wv += 1;
        } else if cat == AttentionK {
            if n_expert == 8 {
                new = t("Q8_0");
            } else if ft.is("IQ3_XS") {
                new = t("IQ3_XXS");
            } else if ft.is("IQ3_XXS") {
                new = t("IQ2_S");
            }
        } else if cat == AttentionQ {
            if ft.is("IQ3_XS") {
                new = t("IQ3_XXS");
            } else if ft.is("IQ3_XXS") {
                new = t("IQ2_S");
            }
        } else if cat == FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, tn)?;
            if ft.is("Q2_K") {
                new = t("Q3_K");
            } else if ft.is("Q2_K_S") {
                if i < n / 8 {
                    new = t("Q4_K");
                }
            } else if ft.is("IQ3_XXS") && !self.has_imatrix {
                new = if i < n / 8 { t("Q4_K") } else { t("Q3_K") };
            } else if ft.is("Q3_K_M") {
                new = if i < n / 16 {
                    t("Q5_K")
                } else if !falcon || use_more_bits(i, n) {
                    t("Q4_K")
                } else {
                    t("Q3_K")
                };
            } else if ft.is("IQ3_M") && (i < n / 8 || (n_expert == 8 && use_more_bits(i, n))) {
                new = t("Q4_K");
            } else if ft.is("Q3_K_L") {
                new = if falcon { t("Q4_K") } else { t("Q5_K") };
            } else if ft.is("Q4_K_M") {
                if falcon {
                    new = if i < n / 16 {
                        t("Q6_K")
                    } else if use_more_bits(i, n) {
                        t("Q5_K")
                    } else {
                        t("Q4_K")
                    };
                } else if use_more_bits(i, n) {
                    new = t("Q6_K");
                }
            } else if i < n / 8 && ft.any(&["IQ4_NL", "IQ4_XS"]) && !self.has_imatrix {
                new = t("Q5_K");
            } else if ft.is("Q5_K_M") && use_more_bits(i, n) {
                new = t("Q6_K");
            } else if ft.is("Q4_K_S") && !falcon && i < n / 8 {
                new = t("Q5_K");
            } else if ft.any(&["Q4_0", "Q5_0"]) && self.has_imatrix && i < n / 8 {
                new = if ft.is("Q4_0") { t("Q4_1") } else { t("Q5_1") };
            }
            self.i_ffn_down += 1;
        } else if cat == AttentionOutput {
            if !falcon {
                if n_expert == 8 {
                    if ft.any(&[
                        "Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S",
                        "Q4_K_M", "IQ3_S", "IQ3_M", "IQ4_XS",
                    ]) {
                        new = t("Q5_K");
                    }
                } else if ft.is("Q2_K") {
                    new = t("Q3_K");
                } else if ft.is("IQ3_XXS") {
                    new = t("IQ3_S");
                } else if ft.is("Q3_K_M") {
                    new = t("Q4_K");
                } else if ft.is("Q3_K_L") {
                    new = t("Q5_K");
                } else if ft.is("IQ3_M") {
                    new = t("Q4_K");
                }
            } else if ft.is("Q3_K_L") {
                new = t("Q4_K");
            }
        } else if cat == AttentionQkv {
            if ft.any(&["Q3_K_M", "Q3_K_L", "IQ3_M"]) {
                new = t("Q4_K");
            } else if ft.is("Q4_K_M") {
                new = t("Q5_K");
            } else if ft.is("Q5_K_M") {
                new = t("Q6_K");
            }
        } else if cat == FfnGate || cat == FfnUp {
            let counter = if cat == FfnGate {
                self.i_ffn_gate
            } else {
                self.i_ffn_up
            };
            let (i, n) = self.layer_info(counter, tn)?;
            if ft.is("IQ3_XS") && i >= n / 8 && i < 7 * n / 8 {
                new = t("IQ3_XXS");
            }
            if cat == FfnGate {
                self.i_ffn_gate += 1;
            } else {
                self.i_ffn_up += 1;
            }
        }
        Ok(new)
    }
}

/// `tensor_type_fallback`: a row length the chosen type's blocks do not divide.
fn fallback(tn: &GgufTensor, target: GgmlType) -> Result<GgmlType, String> {
    let ncols = tn.ne.first().copied().unwrap_or(0);
    if ncols.is_multiple_of(target.block as u64) {
        return Ok(target);
    }
    let to = match target.name {
        "IQ1_S" | "IQ1_M" | "IQ2_XXS" | "IQ2_XS" | "IQ2_S" | "IQ3_XXS" | "IQ3_S" | "IQ4_XS" => {
            t("IQ4_NL")
        }
        "Q2_0" | "Q2_K" | "Q3_K" | "TQ1_0" | "TQ2_0" => t("Q4_0"),
        "Q4_K" => t("Q5_0"),
        "Q5_K" => t("Q5_1"),
        "Q6_K" => t("Q8_0"),
        _ if target.block <= 32 => target,
        other => {
            return Err(format!(
                "no tensor type fallback is defined for type {other} ({QUANT})"
            ))
        }
    };
    Ok(if ncols.is_multiple_of(to.block as u64) {
        to
    } else {
        t("F16")
    })
}

fn is_quantized(ty: GgmlType) -> bool {
    ty.block > 1
}

/// The type llama.cpp's quantizer gives each tensor of `tensors` (in the given order) for file
/// type `ft`, without user overrides; `has_imatrix` as with `--imatrix`. Errors where the
/// quantizer refuses (a type that needs an importance matrix, e.g. Q2_K_S or IQ2_XXS without
/// one: `tensor_requires_imatrix`).
pub fn choose_types(
    ft: Ftype,
    model: &QuantModel,
    tensors: &[GgufTensor],
    has_imatrix: bool,
) -> Result<Vec<GgmlType>, String> {
    let default = ft.default_type();
    let cats: Vec<Category> = tensors.iter().map(|x| category(&x.name)).collect();
    let mut st = State {
        model,
        has_imatrix,
        tied: !cats.contains(&Category::Output),
        n_attention_wv: cats.iter().filter(|c| is_attn_v(**c)).count() as i64,
        i_attention_wv: 0,
        n_ffn: model.n_layer as i64,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
    };
    // weights_map order: layer number (-1 for tensors outside blocks), then name.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let la = tensors[a].layer().unwrap_or(-1);
        let lb = tensors[b].layer().unwrap_or(-1);
        la.cmp(&lb)
            .then_with(|| tensors[a].name.cmp(&tensors[b].name))
    });
    let mut out = vec![default; tensors.len()];
    for i in order {
        let tn = &tensors[i];
        let ty = if !allows_quantization(tn) {
            tn.ty
        } else if is_quantized(default) {
            let chosen = st.choose(default, tn, ft, cats[i])?;
            fallback(tn, chosen)?
        } else {
            default
        };
        let requires_imatrix = cats[i] != Category::TokenEmbd
            && cats[i] != Category::Output
            && (matches!(
                ty.name,
                "IQ3_XXS" | "IQ2_XXS" | "IQ2_XS" | "IQ2_S" | "IQ1_M" | "IQ1_S"
            ) || (ty.name == "Q2_K" && ft.is("Q2_K_S")));
        if requires_imatrix && !has_imatrix && allows_quantization(tn) {
            return Err(format!(
                "llama.cpp's quantizer needs an importance matrix for {} ({} for {}): pass one (--imatrix) or choose another type ({QUANT})",
                ft.name, ty.name, tn.name
            ));
        }
        out[i] = ty;
    }
    Ok(out)
}

/// Bytes of the tensor data a quantized file holds: each tensor at its chosen type, padded to
/// the GGUF alignment (32, `GGUF_DEFAULT_ALIGNMENT`) as gguf writes it.
pub fn tensor_data_bytes(tensors: &[GgufTensor], types: &[GgmlType]) -> u64 {
    tensors
        .iter()
        .zip(types)
        .map(|(tn, ty)| crate::units::div_ceil(tn.bytes_as(*ty), 32) * 32)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, ne: &[u64]) -> GgufTensor {
        GgufTensor {
            name: name.into(),
            ne: ne.to_vec(),
            ty: if ne.len() == 1 { t("F32") } else { t("F16") },
        }
    }

    fn llama_like(n_layer: u64) -> Vec<GgufTensor> {
        let mut v = vec![
            tensor("token_embd.weight", &[4096, 32000]),
            tensor("output.weight", &[4096, 32000]),
            tensor("output_norm.weight", &[4096]),
        ];
        for i in 0..n_layer {
            for (n, ne) in [
                ("attn_q.weight", vec![4096, 4096]),
                ("attn_k.weight", vec![4096, 1024]),
                ("attn_v.weight", vec![4096, 1024]),
                ("attn_output.weight", vec![4096, 4096]),
                ("ffn_gate.weight", vec![4096, 14336]),
                ("ffn_up.weight", vec![4096, 14336]),
                ("ffn_down.weight", vec![14336, 4096]),
                ("attn_norm.weight", vec![4096]),
                ("ffn_norm.weight", vec![4096]),
            ] {
                v.push(tensor(&format!("blk.{i}.{n}"), &ne));
            }
        }
        v
    }

    #[test]
    fn names_parse() {
        assert_eq!(Ftype::parse("q4_k_m").unwrap().id, 15);
        assert_eq!(Ftype::parse("Q4_K_S").unwrap().id, 14);
        assert_eq!(Ftype::parse("q4_k").unwrap().name, "Q4_K_M");
        assert_eq!(Ftype::parse("iq4_xs").unwrap().id, 30);
        assert!(Ftype::parse("q4_k_x").is_none());
    }

    #[test]
    fn q4_k_m_by_hand() {
        // 32 layers (Llama-3.1-8B): use_more_bits(i, 32) holds for i < 4, i >= 28 and
        // (i - 4) % 3 == 2 → i = 6, 9, 12, 15, 18, 21, 24, 27: 16 layers whose attn_v and
        // ffn_down are Q6_K; the others Q4_K. output Q6_K; token_embd Q4_K (untied).
        let m = QuantModel {
            arch: "llama".into(),
            n_expert: 0,
            n_gqa: 4,
            n_layer: 32,
            is_70b: false,
        };
        let ts = llama_like(32);
        let types = choose_types(Ftype::parse("q4_k_m").unwrap(), &m, &ts, false).unwrap();
        let of = |n: &str| types[ts.iter().position(|x| x.name == n).unwrap()].name;
        assert_eq!(of("output.weight"), "Q6_K");
        assert_eq!(of("token_embd.weight"), "Q4_K");
        assert_eq!(of("output_norm.weight"), "F32");
        let q6 = |kind: &str| {
            (0..32)
                .filter(|i| of(&format!("blk.{i}.{kind}")) == "Q6_K")
                .collect::<Vec<_>>()
        };
        let want = vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
        assert_eq!(q6("attn_v.weight"), want);
        assert_eq!(q6("ffn_down.weight"), want);
        assert_eq!(of("blk.5.attn_q.weight"), "Q4_K");
        // Q4_K_S: attn_v Q5_K for the first 4 attn_v tensors, ffn_down Q5_K for layers < 4.
        let s = choose_types(Ftype::parse("q4_k_s").unwrap(), &m, &ts, false).unwrap();
        let of_s = |n: &str| s[ts.iter().position(|x| x.name == n).unwrap()].name;
        assert_eq!(of_s("blk.3.attn_v.weight"), "Q5_K");
        assert_eq!(of_s("blk.4.attn_v.weight"), "Q4_K");
        assert_eq!(of_s("blk.3.ffn_down.weight"), "Q5_K");
        assert_eq!(of_s("blk.31.ffn_down.weight"), "Q4_K");
        // Bytes differ: Q4_K_M carries 16 × (attn_v + ffn_down) at Q6_K.
        assert!(tensor_data_bytes(&ts, &types) > tensor_data_bytes(&ts, &s));
    }

    #[test]
    fn imatrix_and_fallback() {
        let m = QuantModel {
            arch: "llama".into(),
            n_expert: 0,
            n_gqa: 1,
            n_layer: 1,
            is_70b: false,
        };
        let ts = vec![
            tensor("output.weight", &[4096, 32000]),
            tensor("blk.0.ffn_up.weight", &[4096, 100]),
        ];
        assert!(
            choose_types(Ftype::parse("q2_k_s").unwrap(), &m, &ts, false)
                .unwrap_err()
                .contains("importance matrix")
        );
        // Rows of 4000 elements are not a multiple of 256: Q4_K falls back to Q5_0 (4000 % 32 == 0).
        let odd = vec![tensor("blk.0.ffn_up.weight", &[4000, 100])];
        let ty = choose_types(Ftype::parse("q4_k_m").unwrap(), &m, &odd, false).unwrap();
        assert_eq!(ty[0].name, "Q5_0");
    }
}
