//! llama.cpp: the buffers llama.cpp allocates for a GGUF model — model buffers per device for
//! `-ngl` offloaded layers, the KV cache for `-c` cells over `-np` sequences with
//! `-ctk`/`-ctv`, the compute buffers of the worst-case graph, and the logits buffer.
//! Rules from docs/reference/gguf_and_quant.md Part 2, each citing the llama.cpp file.
//!
//! The KV buffer is exact (cells, padding, streams, SWA sizes, quantized row sizes). The compute
//! buffer of a graph that runs on the CPU is simulated: the reserve graph node by node
//! (`reserve_graph`) through ggml-alloc (`ggml_alloc`); elsewhere it is a phase estimate.

pub mod devices;
mod flags;
pub mod ggml_alloc;
pub mod gguf_layout;
pub mod quant_mix;
pub mod reserve_graph;

pub use devices::{parse_tensor_overrides, parse_tensor_split, SplitMode, TensorOverride};
pub use flags::{gguf_file_type_base, LlamaCppFlags};

use crate::estimate::{Assumption, Config, Estimate, Setting};
use crate::ggml::GgmlType;
use crate::gpu::Gpu;
use crate::layer::{Layer, RecurrentKind};
use crate::model::{ModelDesc, Split, Stage, Tensor};
use crate::precision::{KvDtype, Role, WeightFormat};
use crate::units::MIB;

const CONTEXT: &str = "src/llama-context.cpp";
const KV_CACHE: &str = "src/llama-kv-cache.cpp";
const KV_ISWA: &str = "src/llama-kv-cache-iswa.cpp";
const MODEL: &str = "src/llama-model.cpp";

/// llama.cpp pads the context to 256 cells (llama-context.cpp: `n_ctx = GGML_PAD(n_ctx, 256)`;
/// the KV cache pads its size to 256 as well, llama-kv-cache.cpp `get_padding`).
pub const CTX_PAD: u64 = 256;

/// Memory every CUDA process holds outside llama.cpp's buffers; ollama reserves 457 MiB per
/// CUDA GPU for it (ollama ml/device.go `MinimumMemory`), and the same reserve is used here
/// for the largest -ngl that fits.
pub const GPU_RESERVE_BYTES: u64 = 457 * MIB;

/// `-fa on|off|auto`. Auto turns flash attention on where the backend supports it (CPU and
/// CUDA do; llama-context.cpp resolves "auto" after a test graph), so auto counts as on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashAttn {
    On,
    Off,
    Auto,
}

impl FlashAttn {
    pub fn parse(text: &str) -> Result<FlashAttn, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "on" | "1" | "true" | "enabled" => Ok(FlashAttn::On),
            "off" | "0" | "false" | "disabled" => Ok(FlashAttn::Off),
            "auto" | "-1" => Ok(FlashAttn::Auto),
            _ => Err(format!("flash attention '{text}': use on, off or auto")),
        }
    }
    pub fn enabled(&self) -> bool {
        !matches!(self, FlashAttn::Off)
    }
    pub fn name(&self) -> &'static str {
        match self {
            FlashAttn::On => "on",
            FlashAttn::Off => "off",
            FlashAttn::Auto => "auto",
        }
    }
}

/// The llama.cpp settings that size memory.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaCppArgs {
    /// `-c`: total context cells (0 = the model's training context, common.h).
    pub n_ctx: u64,
    /// `-np`: sequences (server slots).
    pub n_seq: u64,
    /// `--kv-unified`: one cache shared by all sequences (else one stream per sequence).
    pub kv_unified: bool,
    /// `-b` (default 2048) and `-ub` (default 512), common/common.h.
    pub n_batch: u64,
    pub n_ubatch: u64,
    pub type_k: KvDtype,
    pub type_v: KvDtype,
    pub flash_attn: FlashAttn,
    /// `--swa-full`: full-size caches for sliding-window layers.
    pub swa_full: bool,
    /// `-ngl`: layers on the GPU, counting the output layer as the last (None = the largest
    /// that fits the GPU, as ollama chooses).
    pub n_gpu_layers: Option<u64>,
    /// `--no-kv-offload` clears it: the KV cache stays in host memory.
    pub offload_kqv: bool,
    /// `-ts`: each GPU's proportion of the layers (empty = by free memory).
    pub tensor_split: Vec<f64>,
    /// `-sm none|layer|row`.
    pub split_mode: devices::SplitMode,
    /// `-mg`: the GPU of `-sm none|row` (KV cache and compute under row split).
    pub main_gpu: usize,
    /// `--n-cpu-moe N`: the experts of layers 0..N stay in host memory (`--cpu-moe`: all).
    pub n_cpu_moe: u64,
    /// `-ot PATTERN=DEVICE,...`: tensors whose name matches go to that device (first match).
    pub tensor_overrides: Vec<devices::TensorOverride>,
    /// `--no-mmap` clears it. The host buffers are the same size either way (mapped pages or
    /// a read copy); with mmap they are page cache the kernel may evict and re-read.
    pub use_mmap: bool,
    /// The host's memory, checked like a GPU's (None = not checked).
    pub host_memory: Option<u64>,
}

impl Default for LlamaCppArgs {
    fn default() -> Self {
        LlamaCppArgs {
            n_ctx: 4096,
            n_seq: 1,
            kv_unified: false,
            n_batch: 2048,
            n_ubatch: 512,
            type_k: KvDtype::F16,
            type_v: KvDtype::F16,
            flash_attn: FlashAttn::Auto,
            swa_full: false,
            n_gpu_layers: None,
            offload_kqv: true,
            tensor_split: Vec::new(),
            split_mode: devices::SplitMode::Layer,
            main_gpu: 0,
            n_cpu_moe: 0,
            tensor_overrides: Vec::new(),
            use_mmap: true,
            host_memory: None,
        }
    }
}

/// How each tensor of a GGUF file is stored. Real files mix types (llama-quant.cpp keeps the
/// output layer and some attn_v/ffn_down at higher precision); `uniform` is the plain case,
/// `by_role` describes a file whose mix is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeMix {
    pub embedding: GgmlType,
    pub output: GgmlType,
    /// attn_q and attn_o (and MLA projections).
    pub attn_qo: GgmlType,
    /// attn_k and attn_v.
    pub attn_kv: GgmlType,
    /// Dense MLP and shared experts.
    pub ffn: GgmlType,
    /// Routed experts.
    pub experts: GgmlType,
    /// Everything else 2-D (routers, Mamba projections, vision).
    pub other: GgmlType,
    /// A llama.cpp file type (`-q q4_k_m`): every tensor at the type llama.cpp's quantizer
    /// picks for it ([`quant_mix`]); the fields above then hold the file type's default type.
    pub file_type: Option<quant_mix::Ftype>,
}

impl TypeMix {
    pub fn uniform(t: GgmlType) -> TypeMix {
        TypeMix {
            embedding: t,
            output: t,
            attn_qo: t,
            attn_kv: t,
            ffn: t,
            experts: t,
            other: t,
            file_type: None,
        }
    }

    /// The mix of a llama.cpp file type.
    pub fn from_file_type(ft: quant_mix::Ftype) -> TypeMix {
        TypeMix {
            file_type: Some(ft),
            ..TypeMix::uniform(ft.default_type())
        }
    }

    /// A `--quant` name that is a llama.cpp file type (q4_k_m, q3_k_s, iq4_xs, q8_0, f16…).
    pub fn parse_file_type(text: &str) -> Option<TypeMix> {
        quant_mix::Ftype::parse(text).map(TypeMix::from_file_type)
    }

    /// The tensors of `model`'s GGUF file with the type each gets under this file type
    /// ([`gguf_layout`] quantized by [`quant_mix`]); None without a file type.
    pub fn file_tensors(&self, model: &ModelDesc) -> Option<Result<Vec<FileTensor>, String>> {
        let ft = self.file_type?;
        let tensors = gguf_layout::gguf_tensors(model);
        let list: Vec<quant_mix::GgufTensor> = tensors.iter().map(|t| t.1.clone()).collect();
        let qm = gguf_layout::quant_model(model);
        // Types that need an importance matrix (Q2_K_S, IQ2_XXS…) exist only as files made with
        // one: size those as made with one (see [`TypeMix::needs_imatrix`]).
        let chosen = quant_mix::choose_types(ft, &qm, &list, false)
            .or_else(|_| quant_mix::choose_types(ft, &qm, &list, true));
        Some(chosen.map(|types| {
            tensors
                .into_iter()
                .zip(types)
                .map(|((p, t), ty)| (p, t, ty))
                .collect()
        }))
    }

    /// Whether llama.cpp's quantizer makes this file type only with an importance matrix.
    pub fn needs_imatrix(&self, model: &ModelDesc) -> bool {
        self.file_type.is_some_and(|ft| {
            let list: Vec<quant_mix::GgufTensor> = gguf_layout::gguf_tensors(model)
                .into_iter()
                .map(|t| t.1)
                .collect();
            quant_mix::choose_types(ft, &gguf_layout::quant_model(model), &list, false).is_err()
        })
    }

    /// The name the estimate reports.
    pub fn name(&self) -> String {
        match self.file_type {
            Some(ft) => ft.name.to_ascii_lowercase(),
            None if *self == TypeMix::uniform(self.ffn) => self.ffn.name.to_ascii_lowercase(),
            None => "mixed".into(),
        }
    }

    /// A GGUF type for a weight format (16-bit formats map to F16/BF16/F32).
    pub fn from_format(f: WeightFormat) -> Result<TypeMix, String> {
        let t = match f {
            WeightFormat::Gguf(g) => g,
            WeightFormat::F32 => GgmlType::by_name("F32").expect("F32"),
            WeightFormat::F16 => GgmlType::by_name("F16").expect("F16"),
            WeightFormat::Bf16 => GgmlType::by_name("BF16").expect("BF16"),
            other => {
                return Err(format!(
                    "llama.cpp loads GGUF files: '{}' is not a GGUF type; use e.g. q4_k, q8_0, f16 (or inspect the .gguf file)",
                    other.name()
                ))
            }
        };
        Ok(TypeMix::uniform(t))
    }

    /// Type of one tensor; 1-D tensors (norms, biases) are F32 (llama-quant.cpp never
    /// quantizes them).
    pub fn type_of(&self, t: &Tensor) -> GgmlType {
        if t.role == Role::Small && t.cols == 1 {
            return GgmlType::by_name("F32").expect("F32");
        }
        match (t.role, t.split) {
            (Role::Embedding, _) => self.embedding,
            (Role::LmHead, _) => self.output,
            (Role::Attention, Split::KvRows { .. }) => self.attn_kv,
            (Role::Attention, _) => self.attn_qo,
            (Role::Mlp, _) => self.ffn,
            (Role::Expert, _) => self.experts,
            // 2-D "small" tensors (learned positions, conv kernels) stay F32 in llama.cpp files.
            (Role::Small, _) => GgmlType::by_name("F32").expect("F32"),
            _ => self.other,
        }
    }

    pub fn tensor_bytes(&self, t: &Tensor) -> u64 {
        self.type_of(t)
            .row_bytes(t.cols)
            .saturating_mul(t.rows)
            .saturating_mul(t.count)
    }
}

/// Weight bytes of a GGUF model split the way llama.cpp places them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufWeights {
    /// token_embd: always on the CPU (llama-model.cpp: "there is very little benefit to
    /// offloading the input layer, so always keep it on the CPU").
    pub input: u64,
    /// Each decoder layer's tensors.
    pub layers: Vec<u64>,
    /// output_norm + output (for tied embeddings llama.cpp loads token_embd a second time as
    /// the output tensor, TENSOR_DUPLICATED, llama-model.cpp `load_tensors`).
    pub output: u64,
    /// Each layer's routed-expert bytes (part of `layers`), which `--n-cpu-moe` keeps in host
    /// memory.
    pub experts: Vec<u64>,
    /// Every tensor by name where names are known (a GGUF file, or a llama.cpp file type's
    /// layout), for `-ot`; empty otherwise.
    pub tensors: Vec<NamedTensor>,
}

/// A tensor of a file type's layout: where it is placed, the tensor, and its chosen type.
pub type FileTensor = (gguf_layout::Place, quant_mix::GgufTensor, GgmlType);

/// One tensor's name, bytes and where llama.cpp places it by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTensor {
    pub place: gguf_layout::Place,
    pub name: String,
    pub bytes: u64,
}

impl GgufWeights {
    pub fn of(model: &ModelDesc, mix: &TypeMix) -> GgufWeights {
        // A GGUF file's own tensor bytes, when the model was read from one.
        if let Some(m) = &model.measured {
            let mut output = m.output_bytes;
            if model.tie_embeddings {
                // No output tensor in the file: llama.cpp loads token_embd again as the head.
                output = output.saturating_add(m.input_bytes);
            }
            let mut experts = m.expert_bytes.clone();
            experts.resize(m.layer_bytes.len(), 0);
            let tensors = m
                .tensors
                .iter()
                .map(|t| NamedTensor {
                    place: match (t.layer, t.output) {
                        (Some(i), _) => gguf_layout::Place::Layer(i),
                        (None, true) => gguf_layout::Place::Output,
                        (None, false) => gguf_layout::Place::Input,
                    },
                    name: t.name.clone(),
                    bytes: t.bytes,
                })
                .collect();
            return GgufWeights {
                input: m.input_bytes,
                layers: m.layer_bytes.clone(),
                output,
                experts,
                tensors,
            };
        }
        if let Some(Ok(tensors)) = mix.file_tensors(model) {
            let mut w = GgufWeights {
                input: 0,
                layers: vec![0; model.num_layers as usize],
                output: 0,
                experts: vec![0; model.num_layers as usize],
                tensors: Vec::with_capacity(tensors.len()),
            };
            for (place, t, ty) in &tensors {
                let b = t.bytes_as(*ty);
                w.tensors.push(NamedTensor {
                    place: *place,
                    name: t.name.clone(),
                    bytes: b,
                });
                match place {
                    gguf_layout::Place::Input => w.input += b,
                    gguf_layout::Place::Output => w.output += b,
                    gguf_layout::Place::Layer(i) => {
                        w.layers[*i as usize] += b;
                        if t.name.contains("_exps.") {
                            w.experts[*i as usize] += b;
                        }
                    }
                }
                if model.tie_embeddings && t.name == "token_embd.weight" {
                    // No output tensor in the file: llama.cpp loads token_embd again as the head.
                    w.output += b;
                }
            }
            return w;
        }
        let inv = model.inventory();
        let per_kind: Vec<u64> = inv
            .kinds
            .iter()
            .map(|k| k.tensors.iter().map(|t| mix.tensor_bytes(t)).sum())
            .collect();
        let layers = inv
            .layer_kind
            .iter()
            .map(|&k| per_kind[k as usize])
            .collect();
        let per_kind_experts: Vec<u64> = inv
            .kinds
            .iter()
            .map(|k| {
                k.tensors
                    .iter()
                    .filter(|t| t.role == Role::Expert)
                    .map(|t| mix.tensor_bytes(t))
                    .sum()
            })
            .collect();
        let experts = inv
            .layer_kind
            .iter()
            .map(|&k| per_kind_experts[k as usize])
            .collect();
        let (mut input, mut output) = (0u64, 0u64);
        for (stage, t) in &inv.global {
            let b = mix.tensor_bytes(t);
            match stage {
                Stage::First => input += b,
                Stage::Last => output += b,
            }
            if model.tie_embeddings && t.role == Role::Embedding {
                // The tied head is the embedding again, in the output type.
                output += mix.output.row_bytes(t.cols).saturating_mul(t.rows);
            }
        }
        GgufWeights {
            input,
            layers,
            output,
            experts,
            tensors: Vec::new(),
        }
    }

    pub fn total_in_file(&self, model: &ModelDesc, mix: &TypeMix) -> u64 {
        // The file stores the tied embedding once.
        let dup = if model.tie_embeddings && mix.file_type.is_some() && model.measured.is_none() {
            self.input
        } else if model.tie_embeddings {
            mix.output
                .row_bytes(model.hidden_size)
                .saturating_mul(model.vocab_size)
        } else {
            0
        };
        self.input + self.layers.iter().sum::<u64>() + self.output - dup
    }
}

/// The KV cache of one kind of layers (llama_kv_cache).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvCache {
    /// Cells per stream.
    pub cells: u64,
    pub streams: u64,
    pub layers: u64,
    pub k_bytes: u64,
    pub v_bytes: u64,
    pub swa: bool,
}

impl KvCache {
    pub fn bytes(&self) -> u64 {
        self.k_bytes + self.v_bytes
    }
}

/// Context sizes as llama.cpp resolves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextSizes {
    /// n_ctx after padding (total over streams).
    pub n_ctx: u64,
    /// Cells per sequence (n_ctx_seq).
    pub n_ctx_seq: u64,
    pub streams: u64,
    pub n_batch: u64,
    pub n_ubatch: u64,
}

/// llama-context.cpp `llama_context` constructor: n_ctx padded to 256; non-unified caches
/// split it per sequence, n_ctx_seq = GGML_PAD(n_ctx / n_seq_max, 256), n_ctx = n_ctx_seq ×
/// n_seq_max; n_batch = min(n_ctx as requested, n_batch) and n_ubatch = min(n_batch, n_ubatch).
pub fn context_sizes(model: &ModelDesc, a: &LlamaCppArgs) -> ContextSizes {
    let requested = if a.n_ctx == 0 {
        model.max_context
    } else {
        a.n_ctx
    };
    let n_seq = a.n_seq.max(1);
    let padded = crate::units::div_ceil(requested, CTX_PAD) * CTX_PAD;
    let (n_ctx, n_ctx_seq, streams) = if a.kv_unified || n_seq == 1 {
        (padded, padded, 1)
    } else {
        let per = crate::units::div_ceil(padded / n_seq, CTX_PAD).max(1) * CTX_PAD;
        (per * n_seq, per, n_seq)
    };
    let n_batch = a.n_batch.min(requested).max(1);
    let n_ubatch = a.n_ubatch.min(n_batch).max(1);
    ContextSizes {
        n_ctx,
        n_ctx_seq,
        streams,
        n_batch,
        n_ubatch,
    }
}

/// Whether llama.cpp gives this architecture sliding-window caches: it does for Gemma 2/3/3n,
/// Cohere 2, gpt-oss and Llama 4 (chunked); for others it ignores the config's window — Phi-3:
/// "Phi SWA is currently disabled", and the llama architecture (Mistral 7B v0.1) has no SWA
/// (src/llama-model.cpp `load_hparams`, per-architecture `swa_type`).
pub fn honours_sliding_window(model: &ModelDesc) -> bool {
    matches!(
        model.model_type.as_str(),
        "gemma2"
            | "gemma3"
            | "gemma3_text"
            | "gemma3n"
            | "gemma3n_text"
            | "cohere2"
            | "gpt_oss"
            | "llama4"
            | "llama4_text"
    )
}

/// The recurrent mixers the llama.cpp profile sizes ([`recurrent_state_bytes`]): llama.cpp's
/// own rows ([`recurrent_state_row`]) for all but RWKV, whose rows are counted from the
/// description's states with a warning.
pub const LLAMACPP_RECURRENT: &[RecurrentKind] = &[
    RecurrentKind::Mamba,
    RecurrentKind::Mamba2,
    RecurrentKind::GatedDeltaNet,
    RecurrentKind::KimiDelta,
    RecurrentKind::ShortConv,
    RecurrentKind::Lightning,
    RecurrentKind::Rwkv,
];

/// One recurrent layer's rows in llama.cpp's recurrent memory (src/llama-memory-recurrent.cpp:
/// per layer `cache_r_l` [n_embd_r, mem_size] and `cache_s_l` [n_embd_s, mem_size], both f32,
/// mem_size = max(1, n_seq_max), src/llama-model.cpp `create_memory`), in elements per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateRow {
    /// n_embd_r: the convolution's last d_conv − 1 columns.
    pub r: u64,
    /// n_embd_s: the recurrent (SSM, delta-rule, linear-attention) state.
    pub s: u64,
}

impl StateRow {
    /// Bytes per sequence (f32 rows).
    pub fn bytes(&self) -> u64 {
        self.r.saturating_add(self.s).saturating_mul(4)
    }
}

/// n_embd_r and n_embd_s of a recurrent layer as llama.cpp sizes them (src/llama-hparams.cpp at
/// 0c1e57098), from the description's state tensors, whose shapes are transformers':
/// - the conv state [channels, d_conv] keeps d_conv − 1 columns in llama.cpp ("the first column
///   of the conv_state is shifted out each time, it's not actually needed"): n_embd_r =
///   (d_conv − 1) × channels, channels being d_inner + 2·n_group·d_state for Mamba/Mamba-2 and
///   the delta rules (Mamba-1: n_group = 0), 3·n_head·head_dim for Kimi's KDA, n_embd for LFM2's
///   short conv ((L_cache − 1) × n_embd);
/// - the recurrent state is whole: n_embd_s = d_state × d_inner (Mamba's [d_inner, d_state],
///   Mamba-2's [heads, head_dim, d_state], Gated DeltaNet's [v_heads, k_dim, v_dim]), head_dim² ×
///   n_head for KDA and lightning attention.
///
/// None for mixers whose llama.cpp rows differ from transformers' state (RWKV: token_shift_count
/// × n_embd and n_embd × wkv_head_size) or that llama.cpp does not run.
pub fn recurrent_state_row(layer: &Layer) -> Option<StateRow> {
    use crate::layer::RecurrentKind as K;
    let r = layer.recurrent.as_ref()?;
    if !matches!(
        r.kind,
        K::Mamba | K::Mamba2 | K::GatedDeltaNet | K::KimiDelta | K::ShortConv | K::Lightning
    ) {
        return None;
    }
    let mut row = StateRow::default();
    for st in &r.states {
        if st.name == "conv" && st.shape.len() == 2 {
            row.r = row
                .r
                .saturating_add(st.shape[0].saturating_mul(st.shape[1].saturating_sub(1)));
        } else {
            row.s = row.s.saturating_add(st.elements());
        }
    }
    Some(row)
}

/// A recurrent layer's state bytes per sequence in llama.cpp ([`recurrent_state_row`]; a mixer
/// it does not size like transformers counts its description's states, f32).
pub fn recurrent_state_bytes(layer: &Layer) -> u64 {
    match recurrent_state_row(layer) {
        Some(row) => row.bytes(),
        None => layer
            .recurrent
            .as_ref()
            .map_or(0, |r| r.elements().saturating_mul(4)),
    }
}

/// The recurrent memory of `layers` (llama_memory_recurrent, or the recurrent half of
/// llama_memory_hybrid): one row per sequence, mem_size = max(1, n_seq_max), whatever the
/// context; layers without a recurrent mixer have none (the hybrid's layer filters:
/// src/llama-model.cpp `create_memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecurrentCache {
    pub cells: u64,
    pub layers: u64,
    pub r_bytes: u64,
    pub s_bytes: u64,
}

impl RecurrentCache {
    pub fn bytes(&self) -> u64 {
        self.r_bytes.saturating_add(self.s_bytes)
    }
}

pub fn recurrent_cache(
    model: &ModelDesc,
    a: &LlamaCppArgs,
    layers: impl Iterator<Item = u64>,
) -> RecurrentCache {
    let cells = a.n_seq.max(1);
    let mut c = RecurrentCache {
        cells,
        ..RecurrentCache::default()
    };
    for i in layers {
        let layer = model.layer(i);
        if layer.recurrent.is_none() {
            continue;
        }
        c.layers += 1;
        match recurrent_state_row(layer) {
            Some(row) => {
                c.r_bytes = c.r_bytes.saturating_add(row.r.saturating_mul(4));
                c.s_bytes = c.s_bytes.saturating_add(row.s.saturating_mul(4));
            }
            None => c.s_bytes = c.s_bytes.saturating_add(recurrent_state_bytes(layer)),
        }
    }
    c.r_bytes = c.r_bytes.saturating_mul(cells);
    c.s_bytes = c.s_bytes.saturating_mul(cells);
    c
}

/// Layers that keep a KV cache of their own (the others read an earlier layer's, or have no
/// attention): from the description's `Attention::kv_source`. Gemma 3n keeps KV in its first 20
/// layers (`n_layer_kv_from_start = 20`, src/models/gemma3n.cpp `load_arch_hparams`; a GGUF
/// without `attention.shared_kv_layers` gets that from the GGUF → config.json translation).
pub fn layers_with_own_kv(model: &ModelDesc) -> u64 {
    model
        .layers()
        .filter(|l| l.attention.as_ref().is_some_and(|a| a.caches()))
        .count() as u64
}

/// The KV caches of `layers` (llama-kv-cache.cpp: per layer K = [n_embd_k_gqa, kv_size,
/// n_stream] of type_k, V likewise; llama-kv-cache-iswa.cpp for sliding-window models: the SWA
/// cache holds min(n_ctx_seq, GGML_PAD(n_swa × (unified ? n_seq : 1) + n_ubatch, 256)) cells
/// unless --swa-full). Row sizes are ggml's (quantized types in blocks of 32). MLA caches its
/// latent and rope key as one K row, V being a view of it. Layers that read another layer's
/// cache and recurrent layers have no KV cache (their state is [`recurrent_state_bytes`]).
pub fn kv_caches(
    model: &ModelDesc,
    a: &LlamaCppArgs,
    layers: impl Iterator<Item = u64>,
) -> Vec<KvCache> {
    let cs = context_sizes(model, a);
    let new_cache = |cells: u64, swa: bool| KvCache {
        cells,
        streams: cs.streams,
        layers: 0,
        k_bytes: 0,
        v_bytes: 0,
        swa,
    };
    // Per cache: the sums of each layer's K and V row bytes (one cell of every layer).
    let mut full = (new_cache(cs.n_ctx_seq, false), 0u64, 0u64);
    let mut windows: Vec<(u64, (KvCache, u64, u64))> = Vec::new();
    let swa = honours_sliding_window(model);
    for i in layers {
        let Some(att) = model.layer(i).attention.as_ref().filter(|x| x.caches()) else {
            continue;
        };
        let (k_row, v_row) = match &att.latent {
            Some(_) => (att.k_width() + att.v_width(), 0),
            None => (att.k_width(), att.v_width()),
        };
        let k = a.type_k.row_bytes(k_row);
        let v = if v_row == 0 {
            0
        } else {
            a.type_v.row_bytes(v_row)
        };
        let slot = match att.span.limit() {
            Some(w) if swa => {
                let cells = if a.swa_full {
                    cs.n_ctx_seq
                } else {
                    let seqs = if a.kv_unified { a.n_seq.max(1) } else { 1 };
                    let want = w.saturating_mul(seqs).saturating_add(cs.n_ubatch);
                    cs.n_ctx_seq
                        .min(crate::units::div_ceil(want, CTX_PAD) * CTX_PAD)
                };
                match windows.iter().position(|(win, _)| *win == w) {
                    Some(p) => &mut windows[p].1,
                    None => {
                        windows.push((w, (new_cache(cells, true), 0, 0)));
                        &mut windows.last_mut().expect("pushed").1
                    }
                }
            }
            _ => &mut full,
        };
        slot.0.layers += 1;
        slot.1 = slot.1.saturating_add(k);
        slot.2 = slot.2.saturating_add(v);
    }
    let mut out = Vec::new();
    for (mut c, k, v) in std::iter::once(full).chain(windows.into_iter().map(|w| w.1)) {
        if c.layers == 0 && c.swa {
            continue;
        }
        let cells = c.cells.saturating_mul(c.streams);
        c.k_bytes = k.saturating_mul(cells);
        c.v_bytes = v.saturating_mul(cells);
        out.push(c);
    }
    out
}

/// Peak of the reserve graph's buffers (llama-context.cpp `graph_reserve` builds the
/// worst-case graph with n_ubatch tokens, every token an output, over the full cache; ggml-alloc
/// reuses memory once a tensor's last consumer ran). The estimate takes the largest of three
/// phases, all f32:
/// - attention: the KQ mask [n_kv, tokens] (f16 with flash attention, f32 without; a second
///   one for the sliding-window layers of an iSWA cache, llama-graph.cpp
///   `build_attn_inp_kv_iswa`), alive through every layer; the residual stream and the normed
///   input, Q, and the new K and V rows ([tokens, 2·n_embd + n_head·d + 2·n_head_kv·d]); Gemma
///   also keeps its scaled input embeddings (llama-model.cpp `llm_build_gemma2`: ggml_scale by
///   sqrt(n_embd)); without flash attention the KQ scores [n_kv, tokens, n_head], with it the
///   attention output [tokens, n_head·d];
/// - feed-forward: residual, normed input, gate and up [tokens, n_ff], plus the mask(s);
/// - output: logits [n_vocab, tokens] plus the final norm and residual.
///
/// A phase estimate, used where [`cpu_graph_buffer_bytes`] does not apply (graphs split
/// between GPU and CPU, builders not modelled): it ignores the holes ggml-alloc leaves, which
/// on the CPU-run records put it up to 28% off where the simulation is exact.
pub fn compute_buffer_bytes(
    model: &ModelDesc,
    a: &LlamaCppArgs,
    with_output: bool,
    with_layers: bool,
) -> u64 {
    let cs = context_sizes(model, a);
    let t = cs.n_ubatch;
    let (e, v) = (model.hidden_size, model.vocab_size);
    let hd = model.num_attention_heads * model.head_dim;
    let kvd = model.num_kv_heads * model.head_dim;
    let ff = match &model.moe {
        Some(m) => {
            (m.experts_per_token * m.expert_intermediate_size).max(m.dense_intermediate_size)
        }
        None => model.intermediate_size,
    };
    let n_kv = cs.n_ctx_seq;
    let streams = cs.streams;
    let fa = a.flash_attn.enabled();
    let tokens_per_stream = crate::units::div_ceil(t, streams);
    let mask_of = |cells: u64| {
        cells
            .saturating_mul(tokens_per_stream)
            .saturating_mul(streams)
            .saturating_mul(if fa { 2 } else { 4 })
    };
    // One mask per cache, over that cache's cells (the SWA cache is smaller unless --swa-full).
    let masks: u64 = kv_caches(model, a, 0..model.num_layers)
        .iter()
        .map(|c| mask_of(c.cells))
        .sum::<u64>()
        .max(mask_of(n_kv));
    let scaled_input = if model.model_type.starts_with("gemma") {
        e
    } else {
        0
    };
    let live = 2 * e + hd + 2 * kvd + scaled_input;
    let attention = if fa {
        t.saturating_mul(4).saturating_mul(live + hd)
    } else {
        let kq = n_kv
            .saturating_mul(t)
            .saturating_mul(model.num_attention_heads)
            .saturating_mul(4);
        kq.saturating_add(t.saturating_mul(4).saturating_mul(live))
    };
    let ffn = t.saturating_mul(4).saturating_mul(2 * e + 2 * ff);
    let output = t.saturating_mul(4).saturating_mul(v + 2 * e);
    let mut peak = 0;
    if with_layers {
        peak = attention.max(ffn).saturating_add(masks);
    }
    if with_output {
        peak = peak.max(output);
    }
    peak
}

/// ggml's CPU buffer alignment (ggml-backend.c: TENSOR_ALIGNMENT 32), which ggml-alloc pads
/// every tensor to.
const CPU_ALIGNMENT: u64 = 32;

/// Largest model whose reserve graph is simulated (about 40 tensors per layer); deeper models
/// get the phase estimate.
const MAX_SIMULATED_LAYERS: u64 = 4096;

/// The CPU compute buffer of a graph that runs wholly on the CPU, simulated: llama.cpp's reserve
/// graph for the model's builder ([`reserve_graph`]) through ggml-alloc ([`ggml_alloc`]). `None`
/// when the builder is not modelled (MoE, MLA, QK-norm, fused QKV…): use
/// [`compute_buffer_bytes`].
pub fn cpu_graph_buffer_bytes(model: &ModelDesc, a: &LlamaCppArgs) -> Option<u64> {
    cpu_reserve_graph(model, a).map(|g| ggml_alloc::buffer_size(&g, CPU_ALIGNMENT))
}

/// The graph builder whose reserve graph is simulated for `model`'s CPU compute buffer, if any
/// (a modelled builder, at most [`MAX_SIMULATED_LAYERS`] layers).
fn simulated_builder(model: &ModelDesc) -> Option<reserve_graph::Builder> {
    reserve_graph::builder_for(model).filter(|_| model.num_layers <= MAX_SIMULATED_LAYERS)
}

/// Whether the CPU compute buffer of `model` is simulated rather than estimated.
pub fn simulates_cpu_graph(model: &ModelDesc) -> bool {
    simulated_builder(model).is_some()
}

/// llama.cpp's reserve graph for `model` under `a` (see [`cpu_graph_buffer_bytes`]); its node
/// count is the "graph: nodes = N" of the start-up log.
pub fn cpu_reserve_graph(model: &ModelDesc, a: &LlamaCppArgs) -> Option<ggml_alloc::Graph> {
    let builder = simulated_builder(model)?;
    let cs = context_sizes(model, a);
    let streams = cs.streams.max(1);
    // graph_reserve(n_tokens, n_seqs = n_seq_max, n_outputs): "making n_tokens a multiple of
    // n_seqs"; the outputs stay n_ubatch (n_outputs_max defaults to n_batch).
    let n_seq = a.n_seq.max(1);
    let tokens = crate::units::div_ceil(cs.n_ubatch, n_seq).saturating_mul(n_seq);
    let caches = kv_caches(model, a, 0..model.num_layers);
    let swa_cells = caches
        .iter()
        .find(|c| c.swa)
        .map_or(cs.n_ctx_seq, |c| c.cells);
    let quantized = |k: KvDtype| matches!(k, KvDtype::Ggml(_));
    let shape = reserve_graph::ReserveShape {
        tokens,
        outputs: cs.n_ubatch,
        streams,
        // graph_reserve: ubatch_reserve(n_tokens / n_seqs, n_seqs) with n_seqs = n_seq_max.
        seqs: a.n_seq.max(1),
        flash_attn: a.flash_attn.enabled(),
        cells: cs.n_ctx_seq,
        swa_cells,
        rs_size: a.n_seq.max(1),
        k_quantized: quantized(a.type_k),
        v_quantized: quantized(a.type_v),
    };
    Some(reserve_graph::build(model, builder, &shape))
}

/// Host-side part of the graph when the layers run on a GPU ("CUDA_Host compute buffer"):
/// ggml_backend_sched gives every graph input to the last backend, the CPU
/// (ggml-backend.cpp `ggml_backend_sched_backend_id_from_cur`: "graph input"), and the
/// token-embedding lookup runs where token_embd is, the CPU (llama-model.cpp: "the input layer
/// is always on the CPU"); that CPU backend allocates from the first GPU's pinned host buffer
/// type (llama-context.cpp: "use the host buffer of the first device CPU"). The GPU split's
/// own buffer then holds copies of the inputs it reads (`ggml_backend_sched_split_graph`),
/// which is why a graph that runs on a GPU is split at least twice. Counted: the embedding rows
/// [n_embd, tokens] f32 and the KQ mask; this reproduces the host compute buffers of the GPU
/// records (engines_llamacpp.rs, three builds). Not counted: the small index inputs, and at
/// 0c1e57098 the unused embeddings input of `build_inp_embd` and the set_rows indices
/// (without flash attention one i64 per V element of the ubatch), which builds after those
/// records added.
pub fn host_input_bytes(model: &ModelDesc, a: &LlamaCppArgs) -> u64 {
    let cs = context_sizes(model, a);
    let t = cs.n_ubatch;
    let mask = cs
        .n_ctx_seq
        .saturating_mul(t)
        .saturating_mul(if a.flash_attn.enabled() { 2 } else { 4 });
    t.saturating_mul(model.hidden_size)
        .saturating_mul(4)
        .saturating_add(mask)
}

/// Logits buffer in host memory: n_vocab × n_seq_max × 4 B (llama-context.cpp
/// `output_reserve`: one output row per sequence for generation).
pub fn output_buffer_bytes(model: &ModelDesc, a: &LlamaCppArgs) -> u64 {
    model
        .vocab_size
        .saturating_mul(a.n_seq.max(1))
        .saturating_mul(4)
}

/// Everything llama.cpp allocates for one placement of layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffers {
    /// Layers on the GPU, llama.cpp's count (n_layer + 1 when the output layer is too).
    pub gpu_layers: u64,
    pub gpu_model: u64,
    pub cpu_model: u64,
    pub gpu_kv: u64,
    pub cpu_kv: u64,
    pub gpu_compute: u64,
    pub cpu_compute: u64,
    pub output: u64,
    pub caches: Vec<KvCache>,
    /// The recurrent memory of every recurrent layer (in `gpu_kv` / `cpu_kv` by device).
    pub states: RecurrentCache,
}

impl Buffers {
    pub fn gpu_total(&self) -> u64 {
        self.gpu_model + self.gpu_kv + self.gpu_compute
    }
}

/// Buffers for `ngl` layers on one GPU (src/llama-model.cpp `load_tensors` at 0c1e57098:
/// i_gpu_start = n_layer + 1 − ngl, and layer il — the output layer being il = n_layer — is on
/// the GPU when il ≥ i_gpu_start, so `-ngl 1` offloads the output layer alone and `-ngl N`
/// the output layer and the last N − 1 blocks; KV of each layer on that layer's device when
/// offload_kqv, llama-kv-cache.cpp).
pub fn buffers(model: &ModelDesc, weights: &GgufWeights, a: &LlamaCppArgs, ngl: u64) -> Buffers {
    let n_layer = model.num_layers;
    let ngl = ngl.min(n_layer + 1);
    let first_gpu = (n_layer + 1).saturating_sub(ngl).min(n_layer);
    let output_on_gpu = ngl > 0;
    let gpu_layer_weights: u64 = weights.layers[first_gpu as usize..].iter().sum();
    let cpu_layer_weights: u64 = weights.layers[..first_gpu as usize].iter().sum();
    let (gpu_model, mut cpu_model) = (gpu_layer_weights, weights.input + cpu_layer_weights);
    let gpu_model = if output_on_gpu {
        gpu_model + weights.output
    } else {
        gpu_model
    };
    if !output_on_gpu {
        cpu_model += weights.output;
    }
    let gpu_caches = kv_caches(model, a, first_gpu..n_layer);
    let cpu_caches = kv_caches(model, a, 0..first_gpu);
    // Recurrent layers' states: one cell per sequence, on the layer's device like the KV cache.
    let states = |range: std::ops::Range<u64>| recurrent_cache(model, a, range).bytes();
    let gpu_kv_raw: u64 = gpu_caches
        .iter()
        .map(KvCache::bytes)
        .sum::<u64>()
        .saturating_add(states(first_gpu..n_layer));
    let cpu_kv_raw: u64 = cpu_caches
        .iter()
        .map(KvCache::bytes)
        .sum::<u64>()
        .saturating_add(states(0..first_gpu));
    let (gpu_kv, cpu_kv) = if a.offload_kqv {
        (gpu_kv_raw, cpu_kv_raw)
    } else {
        (0, gpu_kv_raw + cpu_kv_raw)
    };
    let any_gpu = ngl > 0;
    let gpu_compute = if any_gpu {
        compute_buffer_bytes(model, a, output_on_gpu, true)
    } else {
        0
    };
    let cpu_compute = if any_gpu {
        let cpu_side = compute_buffer_bytes(model, a, !output_on_gpu, first_gpu > 0);
        host_input_bytes(model, a).max(cpu_side)
    } else {
        cpu_graph_buffer_bytes(model, a)
            .unwrap_or_else(|| compute_buffer_bytes(model, a, true, true))
    };
    Buffers {
        gpu_layers: ngl,
        gpu_model,
        cpu_model,
        gpu_kv,
        cpu_kv,
        gpu_compute,
        cpu_compute,
        output: output_buffer_bytes(model, a),
        caches: kv_caches(model, a, 0..n_layer),
        states: recurrent_cache(model, a, 0..n_layer),
    }
}

/// Largest -ngl whose GPU buffers fit `gpu_bytes` after the per-GPU reserve (0 if none).
pub fn max_gpu_layers(
    model: &ModelDesc,
    weights: &GgufWeights,
    a: &LlamaCppArgs,
    gpu_bytes: u64,
) -> u64 {
    let budget = gpu_bytes.saturating_sub(GPU_RESERVE_BYTES);
    // GPU buffers grow with every layer moved to the GPU, so scan from the top.
    (0..=model.num_layers + 1)
        .rev()
        .find(|&n| n == 0 || buffers(model, weights, a, n).gpu_total() <= budget)
        .unwrap_or(0)
}

/// Checks llama.cpp's own refusals (llama-context.cpp `llama_init_from_model`).
pub fn check(model: &ModelDesc, a: &LlamaCppArgs) -> Result<(), String> {
    if let Some(kind) = model.kind_beyond(LLAMACPP_RECURRENT) {
        return Err(format!(
            "{} has {kind} layers, whose cache the llama.cpp profile does not size (use --engine generic)",
            model.id
        ));
    }
    let quantized = |k: KvDtype| matches!(k, KvDtype::Ggml(_));
    if quantized(a.type_v) && !a.flash_attn.enabled() {
        return Err("llama.cpp refuses a quantized V cache without flash attention (\"quantized V cache requires flash_attn to be enabled\", src/llama-context.cpp): add -fa on or use -ctv f16".into());
    }
    for (name, k) in [("-ctk", a.type_k), ("-ctv", a.type_v)] {
        match k {
            KvDtype::F32 | KvDtype::F16 | KvDtype::Bf16 | KvDtype::Ggml(_) => {}
            other => return Err(format!("llama.cpp has no '{}' cache type for {name}; use f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0 or q5_1 (common/arg.cpp)", other.name())),
        }
    }
    if let KvDtype::Ggml(g) = a.type_k {
        if !model.head_dim.is_multiple_of(g.block as u64) {
            return Err(format!("a {} K cache needs the head size ({}) to be a multiple of {} (src/llama-context.cpp)", g.name, model.head_dim, g.block));
        }
    }
    if model.mla.is_some() && a.type_k != a.type_v {
        return Err(format!("llama.cpp refuses different K ({}) and V ({}) cache types for an MLA model (\"model does not support different K and V cache types\", src/llama-context.cpp): give -ctk and -ctv the same type", a.type_k.name(), a.type_v.name()));
    }
    if a.n_seq == 0 || a.n_seq > 4096 {
        return Err("-np must be between 1 and 4096 sequences".into());
    }
    if a.n_ubatch == 0 || a.n_batch == 0 {
        return Err("-b and -ub must be at least 1".into());
    }
    if a.n_ctx > 1 << 34 {
        return Err(format!("-c {} is absurd (limit 2^34)", a.n_ctx));
    }
    Ok(())
}

/// The margin `llama-fit-params` leaves free on every device (common/common.h
/// `fit_params_target`, 1 GiB; llama-server's `--fit on` is the default).
pub const FIT_TARGET_BYTES: u64 = 1024 * MIB;

/// The llama.cpp estimate on `config.parallel.gpus()` GPUs of one kind (`--gpus N`).
/// `config.context` is `-c` (total cells) and `config.batch` is `-np`.
pub fn estimate(
    model: &ModelDesc,
    gpu: &Gpu,
    config: Config,
    mix: &TypeMix,
    a: &LlamaCppArgs,
) -> Result<Estimate, String> {
    let n = config.parallel.gpus().clamp(1, 64) as usize;
    estimate_on(model, &vec![gpu.clone(); n], config, mix, a)
}

/// The llama.cpp estimate on the GPUs listed (llama.cpp's device order; alike or not): every
/// device's buffers in `devices`, the host included; the top-level figures are the GPU with
/// the least room left, and the verdict holds only if every device holds its buffers.
pub fn estimate_on(
    model: &ModelDesc,
    gpus: &[Gpu],
    config: Config,
    mix: &TypeMix,
    a: &LlamaCppArgs,
) -> Result<Estimate, String> {
    check(model, a)?;
    if let Some(Err(e)) = mix.file_tensors(model) {
        return Err(e);
    }
    let Some(gpu) = gpus.first() else {
        return Err("llama.cpp needs at least one GPU here (-ngl 0 runs on the CPU alone)".into());
    };
    let weights = GgufWeights::of(model, mix);
    if a.n_cpu_moe > 0 && weights.experts.iter().all(|&x| x == 0) {
        return Err(
            "--cpu-moe / --n-cpu-moe keep routed experts in host memory, and this model has none"
                .into(),
        );
    }
    let inv = model.inventory();
    // llama-server's --fit (on by default) picks -ngl and, for MoE, the experts kept in host
    // memory, unless -ngl or --n-cpu-moe is given.
    let fitted = devices::fit(model, &weights, a, gpus, FIT_TARGET_BYTES)?;
    let (ngl, a_eff) = match a.n_gpu_layers {
        // A user's -ngl makes --fit stand down ("n_gpu_layers already set by user").
        Some(n) => (n.min(model.num_layers + 1), a.clone()),
        None => (
            fitted.0,
            LlamaCppArgs {
                n_cpu_moe: fitted.1,
                ..a.clone()
            },
        ),
    };
    let a_given_cpu_moe = a.n_cpu_moe > 0;
    let a = &a_eff;
    let devs = devices::device_buffers(model, &weights, a, gpus, ngl)?;
    let host = devs.last().expect("host entry").clone();
    // The GPU with the least room left stands for all in the top-level figures.
    let worst = devs
        .iter()
        .filter(|d| d.kind == "gpu")
        .min_by_key(|d| crate::estimate::signed_difference(d.memory_bytes, d.total_bytes))
        .expect("a GPU")
        .clone();
    let mut e = Estimate::skeleton(model, inv, gpu, &config, "llamacpp");
    let cs = context_sizes(model, a);
    e.context = cs.n_ctx;
    e.batch = a.n_seq;
    // llama_context's constructor (src/llama-context.cpp) compares each sequence's cells with
    // the training context and warns, then runs: "n_ctx_seq (N) > n_ctx_train (M) -- possible
    // training context overflow" (the "<" twin of this line is in the CPU-run logs of
    // data/calibration/llamacpp_cpu_runs.jsonl).
    if cs.n_ctx_seq > model.max_context {
        e.warnings.push(format!(
            "llama.cpp warns \"n_ctx_seq ({}) > n_ctx_train ({}) -- possible training context overflow\" (src/llama-context.cpp): each sequence's context is beyond the model's limit",
            cs.n_ctx_seq, model.max_context
        ));
    }
    e.kv_dtype = if a.type_k == a.type_v {
        a.type_k.name()
    } else {
        format!("{}/{}", a.type_k.name(), a.type_v.name())
    };
    e.quant = mix.name();
    if model.measured.is_none() {
        if let Some(ft) = mix.file_type {
            e.warnings.push(format!(
                "weights sized as the {} file llama.cpp's quantizer writes for this architecture (src/llama-quant.cpp rules at 0c1e57098{}); a file on disk gives its exact bytes",
                ft.name,
                if mix.needs_imatrix(model) { ", made with an importance matrix as this type requires" } else { "" }
            ));
            let unmodelled = gguf_layout::unmodelled_params(model);
            if unmodelled > 0 {
                e.warnings.push(format!(
                    "{} of the model's matrix parameters are in tensors whose llama.cpp names vramplan does not know (gguf_layout.rs): counted at F16, unquantized, so the weights may be overstated",
                    crate::units::params_short(unmodelled)
                ));
            }
        }
    }
    e.gpu = worst.name.clone();
    e.weights_bytes = worst.model_bytes;
    e.kv_cache_bytes = devs.iter().map(|d| d.kv_bytes).sum();
    e.activation_bytes = worst.compute_bytes;
    e.overhead_bytes = GPU_RESERVE_BYTES;
    e.gpu_model_buffer_bytes = Some(worst.model_bytes);
    e.cpu_model_buffer_bytes = Some(host.model_bytes);
    e.kv_buffer_bytes = Some(worst.kv_bytes);
    e.cpu_kv_buffer_bytes = Some(host.kv_bytes);
    e.compute_buffer_bytes = Some(worst.compute_bytes);
    e.cpu_compute_buffer_bytes = Some(host.compute_bytes);
    e.output_buffer_bytes = Some(host.output_bytes);
    e.gpu_layers = Some(ngl);
    e.max_gpu_layers = Some(fitted.0);
    e.model_layers = Some(model.num_layers + 1);
    e.utilization = 1.0;
    e.set_verdict(worst.total_bytes, worst.memory_bytes);
    e.fits = e.fits && devices::all_fit(&devs);
    if worst.fits && !host.fits {
        // The host is what does not fit: the shortfall is its.
        e.margin_bytes = crate::estimate::signed_difference(host.memory_bytes, host.total_bytes);
    }
    if !host.fits {
        e.warnings.push(format!(
            "host memory: llama.cpp's host buffers need {:.2} GiB and the host has {:.2} GiB",
            host.total_bytes as f64 / crate::units::GIB as f64,
            host.memory_bytes as f64 / crate::units::GIB as f64
        ));
    }
    if a.host_memory.is_none() {
        e.warnings.push(format!(
            "host memory not checked ({:.2} GiB of host buffers): pass --host-memory",
            host.total_bytes as f64 / crate::units::GIB as f64
        ));
    }
    if devices::pipeline_parallel(model, a, gpus.len(), ngl) {
        e.warnings.push("several GPUs with every layer offloaded: llama.cpp runs them as a pipeline, whose scheduler keeps extra copies of the graph inputs (GGML_SCHED_MAX_COPIES) that the compute figures do not count".into());
    }
    if ngl > 0 || !simulates_cpu_graph(model) {
        let why = if simulates_cpu_graph(model) {
            "the reserve graph is simulated for graphs that run on the CPU alone".to_string()
        } else {
            format!(
                "no llama.cpp graph builder is simulated for model_type \"{}\"",
                model.model_type
            )
        };
        e.warnings.push(format!(
            "compute buffers are the phase estimate ({why}): on the llama.cpp ground-truth CPU runs it was off by up to 69% (Gemma 3n, before its builder was simulated)"
        ));
    }
    // llama.cpp's recurrent rows are exact (n_embd_r/n_embd_s of llama-hparams.cpp) for the
    // mixers `recurrent_state_row` sizes; any other mixer is counted from its description.
    if model
        .layers()
        .any(|l| l.recurrent.is_some() && recurrent_state_row(l).is_none())
    {
        e.warnings.push("recurrent-state buffers of this mixer are counted from the description's state shapes (f32); llama.cpp's own rows for it are not modelled".into());
    }
    // Sequences of n_ctx_seq cells that the cache holds: -np slots (each its own cells).
    e.max_concurrency = if e.fits { a.n_seq } else { 0 };
    // Largest -c whose buffers still fit every device with this -ngl.
    let fits_ctx = |c: u64| {
        let mut t = a.clone();
        t.n_ctx = c;
        devices::device_buffers(model, &weights, &t, gpus, ngl)
            .map(|d| devices::all_fit(&d))
            .unwrap_or(false)
    };
    let mut max_ctx = 0;
    if fits_ctx(CTX_PAD) {
        let (mut lo, mut hi) = (
            CTX_PAD,
            model
                .max_context
                .saturating_mul(a.n_seq.max(1))
                .max(CTX_PAD),
        );
        if fits_ctx(hi) {
            lo = hi;
        } else {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if fits_ctx(mid) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
        }
        max_ctx = lo;
    }
    let model_cap = model.max_context.saturating_mul(a.n_seq.max(1));
    e.max_context = max_ctx.min(model_cap);
    e.max_context_limit = if max_ctx >= model_cap {
        "model"
    } else {
        "memory"
    };
    e.devices = devs;
    e.min_gpus = None;
    e.engine_settings = vec![
        Setting {
            name: "n_ctx",
            value: format!(
                "{} ({} per sequence × {} stream{})",
                cs.n_ctx,
                cs.n_ctx_seq,
                cs.streams,
                if cs.streams == 1 { "" } else { "s" }
            ),
            origin: format!("-c {}, padded to 256 ({CONTEXT})", a.n_ctx),
        },
        Setting {
            name: "n_seq_max",
            value: a.n_seq.to_string(),
            origin: "-np".into(),
        },
        Setting {
            name: "kv_unified",
            value: a.kv_unified.to_string(),
            origin: "--kv-unified".into(),
        },
        Setting {
            name: "n_batch",
            value: cs.n_batch.to_string(),
            origin: "-b (default 2048), at most n_ctx".into(),
        },
        Setting {
            name: "n_ubatch",
            value: cs.n_ubatch.to_string(),
            origin: "-ub (default 512), at most n_batch".into(),
        },
        Setting {
            name: "type_k",
            value: a.type_k.name(),
            origin: "-ctk (default f16)".into(),
        },
        Setting {
            name: "type_v",
            value: a.type_v.name(),
            origin: "-ctv (default f16)".into(),
        },
        Setting {
            name: "flash_attn",
            value: a.flash_attn.name().into(),
            origin: "-fa (default auto = on for CUDA/CPU)".into(),
        },
        Setting {
            name: "n_gpu_layers",
            value: ngl.to_string(),
            origin: if a.n_gpu_layers.is_some() {
                "-ngl".into()
            } else {
                "llama-server --fit: the most that fits every GPU with 1 GiB free (common/fit.cpp)"
                    .into()
            },
        },
        Setting {
            name: "swa_full",
            value: a.swa_full.to_string(),
            origin: "--swa-full".into(),
        },
        if ngl == 0 && simulates_cpu_graph(model) {
            Setting {
                name: "compute_buffer",
                value: "simulated".into(),
                origin:
                    "reserve graph through ggml-alloc: exact on the 470 CPU-run calibration records and on 542 of the 543 llama.cpp ground-truth runs (23 architectures; worst 2.65%)"
                        .into(),
            }
        } else {
            Setting {
                name: "compute_buffer",
                value: "estimated".into(),
                origin: "phase estimate (GPU offload, or a graph builder not modelled): 2% off on the one GPU record, up to 28% on the CPU-run records".into(),
            }
        },
    ];
    if model.moe.is_some() {
        e.engine_settings.push(Setting {
            name: "n_cpu_moe",
            value: a.n_cpu_moe.min(model.num_layers).to_string(),
            origin: if a_given_cpu_moe {
                "--n-cpu-moe / --cpu-moe: these layers' experts in host memory".into()
            } else {
                "llama-server --fit: the fewest layers' experts in host memory that fit (common/fit.cpp)".into()
            },
        });
    }
    if gpus.len() > 1 {
        e.engine_settings.push(Setting {
            name: "split_mode",
            value: a.split_mode.name().into(),
            origin: "-sm (default layer)".into(),
        });
        e.engine_settings.push(Setting {
            name: "tensor_split",
            value: if a.tensor_split.is_empty() {
                "by free memory".into()
            } else {
                a.tensor_split
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            },
            origin: "-ts (default: each GPU's free memory, src/llama-model.cpp)".into(),
        });
    }
    e.assumptions = vec![
        Assumption {
            figure: "model buffers",
            formula: "token_embd on the CPU; layer il (the output layer is il = n_layer: output_norm + output, a second copy of token_embd when tied) on a GPU when il ≥ n_layer + 1 − ngl, on the first GPU whose split point exceeds (il − i_gpu_start)/ngl; --n-cpu-moe keeps the experts of the first N layers in host memory".into(),
            source: MODEL,
        },
        Assumption {
            figure: "kv_buffer",
            formula: "Σ layers (row_size(type_k, n_embd_k_gqa) + row_size(type_v, n_embd_v_gqa)) × cells × streams; cells = pad(n_ctx, 256) (per stream pad(n_ctx/np, 256) unless unified); SWA layers min(cells, pad(n_swa + n_ubatch, 256))".into(),
            source: KV_CACHE,
        },
        Assumption {
            figure: "compute_buffer",
            formula: "largest of attention (KQ scores [n_kv × n_ubatch × heads] f32 without flash attention, + mask), feed-forward and output (logits [n_vocab × n_ubatch] f32) phases; an estimate of ggml-alloc's peak".into(),
            source: "src/llama-context.cpp graph_reserve; src/llama-graph.cpp",
        },
        Assumption { figure: "reserve", formula: "457 MiB per GPU outside llama.cpp's buffers (CUDA context)".into(), source: "ollama ml/device.go MinimumMemory" },
        Assumption { figure: "sliding window", formula: "SWA cache size".into(), source: KV_ISWA },
        Assumption {
            figure: "flash attention",
            formula: "-fa auto counts as on; llama.cpp probes the backend at start-up and turns it off where the device cannot run it for this model, and then the compute buffers grow (KQ scores [n_kv, n_ubatch, n_head] f32 and f32 masks instead of f16): give -fa off for such a device".into(),
            source: CONTEXT,
        },
    ];
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    fn q(name: &str) -> GgmlType {
        GgmlType::by_name(name).unwrap()
    }

    #[test]
    fn context_padding_and_streams() {
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let a = |n_ctx, n_seq, kv_unified| LlamaCppArgs {
            n_ctx,
            n_seq,
            kv_unified,
            ..LlamaCppArgs::default()
        };
        // 1000 → 1024 cells; n_batch = min(2048, 1000) = 1000; n_ubatch 512.
        let c = context_sizes(m, &a(1000, 1, false));
        assert_eq!(
            (c.n_ctx, c.n_ctx_seq, c.streams, c.n_batch, c.n_ubatch),
            (1024, 1024, 1, 1000, 512)
        );
        // 5000 over 3 split sequences: pad(5000) = 5120; 5120 / 3 = 1706 → pad 1792; n_ctx 5376.
        let c = context_sizes(m, &a(5000, 3, false));
        assert_eq!((c.n_ctx, c.n_ctx_seq, c.streams), (5376, 1792, 3));
        // 512 over 4 split: 512 / 4 = 128 → 256 cells each, n_ctx 1024; unified keeps 512 × 1.
        assert_eq!(context_sizes(m, &a(512, 4, false)).n_ctx, 1024);
        assert_eq!(context_sizes(m, &a(512, 4, true)).n_ctx_seq, 512);
    }

    #[test]
    fn kv_bytes_by_hand() {
        // Llama-3.1-8B, -c 8192, f16: 32 layers × 8192 cells × (1024 + 1024) × 2 B = 1 GiB.
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let a = LlamaCppArgs {
            n_ctx: 8192,
            ..LlamaCppArgs::default()
        };
        let c = kv_caches(m, &a, 0..32);
        assert_eq!(c.iter().map(KvCache::bytes).sum::<u64>(), 1 << 30);
        // q8_0 K, f16 V: K rows 1024 × 34/32 = 1088 B → 32 × 8192 × (1088 + 2048) = 822,083,584 B.
        let a8 = LlamaCppArgs {
            type_k: KvDtype::parse("q8_0").unwrap(),
            ..a.clone()
        };
        assert_eq!(
            kv_caches(m, &a8, 0..32)
                .iter()
                .map(KvCache::bytes)
                .sum::<u64>(),
            822_083_584
        );
    }

    #[test]
    fn sliding_window_cache_by_hand() {
        // Gemma-2-9B: 42 layers, 21 SWA (window 4096). -c 32768, ub 512: SWA cells =
        // pad(4096 + 512, 256) = 4608; full cells 32768. Row = 8 heads × 256 = 2048 (f16 4096 B).
        let g = catalogue().model("gemma-2-9b-it").unwrap();
        let a = LlamaCppArgs {
            n_ctx: 32768,
            ..LlamaCppArgs::default()
        };
        let c = kv_caches(g, &a, 0..42);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].cells, c[0].layers), (32768, 21));
        assert_eq!((c[1].cells, c[1].layers), (4608, 21));
        // 21 × (32768 + 4608) × 4096 × 2 B = 21 × 37,376 × 8,192 = 6,429,868,032 B.
        assert_eq!(c.iter().map(KvCache::bytes).sum::<u64>(), 6_429_868_032);
        // --swa-full: both at 32768.
        let full = LlamaCppArgs {
            swa_full: true,
            ..a
        };
        assert_eq!(
            kv_caches(g, &full, 0..42)
                .iter()
                .map(|c| c.cells)
                .collect::<Vec<_>>(),
            vec![32768, 32768]
        );
    }

    #[test]
    fn layer_placement_by_hand() {
        // Llama-3.1-8B in Q8_0: -ngl 33 puts all 32 layers and the output layer on the GPU,
        // token_embd stays on the CPU: 128,256 × 4096 × 34/32 = 558,170,112 B.
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let mix = TypeMix::uniform(q("Q8_0"));
        let w = GgufWeights::of(m, &mix);
        assert_eq!(w.input, 558_170_112);
        let a = LlamaCppArgs::default();
        let all = buffers(m, &w, &a, 33);
        assert_eq!(all.cpu_model, w.input);
        assert_eq!(all.gpu_model, w.layers.iter().sum::<u64>() + w.output);
        // -ngl 32: the output layer stays on the GPU and block 0 moves to the CPU (i_gpu_start
        // = 33 − 32 = 1); -ngl 1: the output layer alone; -ngl 0: everything on the CPU.
        let one_less = buffers(m, &w, &a, 32);
        assert_eq!(one_less.cpu_model, w.input + w.layers[0]);
        let out_only = buffers(m, &w, &a, 1);
        assert_eq!((out_only.gpu_model, out_only.gpu_kv), (w.output, 0));
        let none = buffers(m, &w, &a, 0);
        assert_eq!((none.gpu_model, none.gpu_kv, none.gpu_compute), (0, 0, 0));
        // -ngl 17: the output layer and 16 of 32 blocks, so half the KV.
        let half = buffers(m, &w, &a, 17);
        assert_eq!(half.gpu_kv, half.cpu_kv);
    }

    #[test]
    fn output_phase_matches_a_cuda_log() {
        // llamacpp.jsonl: a Llama-3-8B-class model, n_ctx 1024, n_ubatch 512: "CUDA0 compute
        // buffer size = 266.50 MiB" = 512 × 4 × (128,256 + 2 × 4096) B exactly.
        let m = catalogue().model("llama-3-8b").unwrap();
        let a = LlamaCppArgs {
            n_ctx: 1024,
            flash_attn: FlashAttn::On,
            ..LlamaCppArgs::default()
        };
        assert_eq!(compute_buffer_bytes(m, &a, true, true), 279_445_504);
        assert_eq!(279_445_504, 512 * 4 * (128_256 + 2 * 4096));
        assert_eq!(279_445_504.0 / MIB as f64, 266.5);
    }

    #[test]
    fn refusals() {
        let m = catalogue().model("llama-3.1-8b").unwrap();
        let a = LlamaCppArgs {
            type_v: KvDtype::parse("q8_0").unwrap(),
            flash_attn: FlashAttn::Off,
            ..LlamaCppArgs::default()
        };
        assert!(check(m, &a).unwrap_err().contains("flash attention"));
        let b = LlamaCppArgs {
            type_k: KvDtype::Fp8,
            ..LlamaCppArgs::default()
        };
        assert!(check(m, &b).unwrap_err().contains("no 'fp8' cache type"));
    }

    #[test]
    fn largest_ngl_fits() {
        // Llama-3.1-70B Q4_K on a 24 GB card cannot hold all 81 layers; the answer fits and
        // one more does not.
        let cat = catalogue();
        let m = cat.model("llama-3.1-70b").unwrap();
        let gpu = cat.gpu("rtx-4090").unwrap();
        let mix = TypeMix::uniform(q("Q4_K"));
        let w = GgufWeights::of(m, &mix);
        let a = LlamaCppArgs {
            n_ctx: 8192,
            ..LlamaCppArgs::default()
        };
        let n = max_gpu_layers(m, &w, &a, gpu.memory_bytes);
        assert!(n > 0 && n < 81, "{n}");
        let budget = gpu.memory_bytes - GPU_RESERVE_BYTES;
        assert!(buffers(m, &w, &a, n).gpu_total() <= budget);
        assert!(buffers(m, &w, &a, n + 1).gpu_total() > budget);
    }
}
