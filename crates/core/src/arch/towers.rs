//! Vision and audio towers and their projectors: counted in the weights (first pipeline stage,
//! kept in 16-bit by the quantization recipes) and reported as their own lines, so `params` is
//! the whole checkpoint's count as transformers builds it and `text_params` the language model's.
//!
//! Encoders are ViT-shaped (patch embedding, optional class token and position table, N blocks
//! of norm / q k v o / norm / MLP, optional pre- and post-norms, optional patch merger); what
//! varies between families (norm kind, biases, gated MLP, Conv3d patches, mergers, pooling head)
//! is data: `data/transformers/towers.toml`, one entry per vision/audio model_type and per
//! projector, each with the modeling file of transformers 5.24.0 it was read from.

use super::family::Toggle;
use super::fields::Scope;
use super::{ArchError, Basics, Builder};
use crate::model::{Role, Split, Stage, Tensor, Tower, TowerKind};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

const FILE: &str = include_str!("../../data/transformers/towers.toml");

/// One encoder family's shape.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Encoder {
    /// The modeling file it was read from (the data's citation; required, never computed with).
    #[allow(dead_code)]
    source: String,
    /// "vision" or "audio".
    #[serde(default)]
    kind: Option<String>,
    /// "layer" (weight and bias) or "rms".
    #[serde(default)]
    norm: Option<String>,
    /// Biases: fixed, or the encoder config's key that switches them (default true).
    #[serde(default)]
    qkv_bias: Option<Toggle>,
    /// Key projection without bias while q and v have one (Whisper).
    #[serde(default)]
    k_bias: Option<bool>,
    #[serde(default)]
    o_bias: Option<Toggle>,
    /// "plain" (fc1, fc2), "gated" (gate, up, down) or "none" (counted by a part).
    #[serde(default)]
    mlp: Option<String>,
    #[serde(default)]
    mlp_bias: Option<Toggle>,
    /// The config key of the blocks' MLP width when it is not `intermediate_size` (GLM-4V's
    /// blocks use `out_hidden_size`).
    #[serde(default)]
    intermediate_key: Option<String>,
    /// The config key of the block count when it is none of the usual names.
    #[serde(default)]
    layers_key: Option<String>,
    /// The config key of the key/value heads when the encoder's attention is grouped-query
    /// (EXAONE 4.5's vision blocks: qkv of h + 2 × kv_heads × head_dim rows).
    #[serde(default)]
    kv_heads_key: Option<String>,
    /// Parameters of each block beyond the skeleton's, as a formula (q/k norms, extra norms).
    #[serde(default)]
    block_extra: Option<String>,
    /// Further modules of the encoder, each a formula (`arch/expr.rs`) over the encoder's
    /// config: mergers, downsamplers, resamplers, heads.
    #[serde(default)]
    parts: Vec<Part>,
    /// false: the encoder is not ViT-shaped and its `parts` are all of it.
    #[serde(default)]
    skeleton: Option<bool>,
    /// Encoders nested in this one's config under these keys (Unlimited-OCR's `sam_config` and
    /// `encoder_config`), each described by its own entry, counted in this one.
    #[serde(default)]
    nested: Vec<String>,
    /// A timm model named by the config's `architecture` (transformers' TimmWrapperModel): its
    /// size is the `[timm.<architecture>]` entry's.
    #[serde(default)]
    timm: Option<bool>,
    /// MLP width = hidden × this config key (Qwen2-VL `mlp_ratio`) when no intermediate_size.
    #[serde(default)]
    mlp_ratio_key: Option<String>,
    /// "conv2d" (hidden × channels·p·p), "conv3d" (× temporal_patch_size), "conv1d_audio"
    /// (Whisper: two Conv1d of kernel 3 over num_mel_bins), "linear" (unfold + Linear).
    #[serde(default)]
    patch: Option<String>,
    #[serde(default)]
    patch_bias: Option<Toggle>,
    /// "table" ((image/patch)² rows, + 1 with a class token), "key" (rows = `positions_key`),
    /// "none" (rotary positions).
    #[serde(default)]
    positions: Option<String>,
    #[serde(default)]
    positions_key: Option<String>,
    #[serde(default)]
    class_token: Option<bool>,
    #[serde(default)]
    pre_norm: Option<bool>,
    #[serde(default)]
    post_norm: Option<bool>,
    /// SigLIP's attention-pooling head, present when this key is true.
    #[serde(default)]
    pool_head_key: Option<String>,
    /// Per-block layer-scale vectors (2 × hidden).
    #[serde(default)]
    layer_scale: Option<bool>,
    /// Qwen-VL patch merger: "rms" / "layer" norm over hidden, then two linears with biases
    /// from hidden·m² to `out_hidden_size`.
    #[serde(default)]
    merger: Option<String>,
    /// Llama 4's pixel-shuffle adapter: fc1 [projector_input_dim, intermediate_size] and fc2
    /// [projector_output_dim, projector_output_dim] without biases; the encoder's output is
    /// then `vision_output_dim` wide.
    #[serde(default)]
    adapter: Option<String>,
    /// The config key of the encoder's width when it is not `hidden_size` (Qwen2-VL `embed_dim`,
    /// whose `hidden_size` is the merger's output), and of the merger's output width.
    #[serde(default)]
    hidden_key: Option<String>,
    #[serde(default)]
    out_key: Option<String>,
    /// Qwen3-VL deepstack mergers, one per entry of `deepstack_visual_indexes`, LayerNorm over
    /// hidden·m².
    #[serde(default)]
    deepstack: Option<bool>,
}

/// A module described by a formula. Names: `h` the encoder width, `i` its MLP width, `layers`,
/// `p` the patch size, `c` the input channels, `heads`, `text_h` the text model's width,
/// `in` (projectors) the encoder's output width; then any key of the encoder's config, the
/// top-level config or the text config (booleans count 1 or 0; `obj.key` reaches into a nested
/// config, `top.key` skips the encoder's; `len(key)` is a list's length).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Part {
    /// What it is, with the module path in the modeling file.
    name: String,
    params: String,
    /// "vision", "audio", "projector" or "other": the part is a tower line of its own (a
    /// Q-Former, an audio tokenizer) rather than counted in the encoder or projector holding it.
    #[serde(default)]
    tower: Option<String>,
}

/// A projector from the encoder to the text model, per top-level model_type.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Projector {
    /// The modeling file it was read from (the data's citation; required, never computed with).
    #[allow(dead_code)]
    source: String,
    /// "mlp2" (linear_1 [text, in] + linear_2 [text, text]), "linear" ([text, in]),
    /// "gemma3" (mm_input_projection_weight [vision, text] + soft-embedding RMSNorm [vision]),
    /// "mistral3" (RMSNorm [vision], patch merger [vision, vision·m²], mlp2), "none".
    kind: String,
    /// Whether the linears have biases: fixed, or the config key (default true).
    #[serde(default)]
    bias: Option<bool>,
    #[serde(default)]
    bias_key: Option<String>,
    /// The projector input is the vision hidden size × this many feature layers when
    /// `vision_feature_layer` is a list (VipLLaVA).
    #[serde(default)]
    input_key: Option<String>,
    /// The input is the vision width × this config key squared (Idefics3's pixel-shuffle
    /// `scale_factor`), or × `input_factor` (InternVL's fixed 2 × 2 pixel shuffle).
    #[serde(default)]
    input_scale_key: Option<String>,
    #[serde(default)]
    input_factor: Option<u64>,
    /// How many copies of the vision encoder the model holds (Video-LLaVA: image and video
    /// towers of the same config).
    #[serde(default)]
    encoder_copies: Option<u64>,
    /// LLaVA-NeXT's `image_newline` [text hidden].
    #[serde(default)]
    image_newline: Option<bool>,
    /// A LayerNorm over the projector input (VipLLaVA `projector_layernorm`).
    #[serde(default)]
    input_norm: Option<bool>,
    /// Further modules, each a formula (see `Part`).
    #[serde(default)]
    parts: Vec<Part>,
}

/// A timm architecture's parameter count, for the model_args it was built with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Timm {
    /// How it was counted (timm release, arguments).
    #[allow(dead_code)]
    source: String,
    /// The config's `model_args` the count holds for (absent: none).
    #[serde(default)]
    model_args: Option<serde_json::Value>,
    params: u64,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    encoder: HashMap<String, Encoder>,
    #[serde(default)]
    projector: HashMap<String, Projector>,
    #[serde(default)]
    timm: HashMap<String, Timm>,
}

fn table() -> &'static Doc {
    static T: OnceLock<Doc> = OnceLock::new();
    // Compiled in and checked by the tests: a failure here is a build defect.
    T.get_or_init(|| {
        let mut raw: toml::Table = toml::from_str(FILE).expect("towers.toml parses");
        for section in ["encoder", "projector"] {
            if let Some(toml::Value::Table(entries)) = raw.get_mut(section) {
                resolve_likes(entries);
            }
        }
        toml::Value::Table(raw)
            .try_into()
            .expect("towers.toml entries are well-formed")
    })
}

/// Fills each entry's `like = "<other entry>"` in: the other entry's keys, then its own.
fn resolve_likes(entries: &mut toml::Table) {
    let snapshot = entries.clone();
    for (_, entry) in entries.iter_mut() {
        let toml::Value::Table(own) = entry else {
            continue;
        };
        let mut seen = 0;
        while let Some(toml::Value::String(parent)) = own.remove("like") {
            seen += 1;
            let Some(toml::Value::Table(p)) = snapshot.get(&parent) else {
                break;
            };
            for (k, v) in p {
                if !own.contains_key(k) || (k == "like" && seen < 8) {
                    own.insert(k.clone(), v.clone());
                }
            }
            if seen >= 8 {
                break;
            }
        }
        own.remove("like");
    }
}

/// A size given as a number or a [height, width] list (InternViT's `image_size: [448, 448]`):
/// the first entry (square images and patches).
fn size_of(v: &Scope, key: &str, default: u64) -> Result<u64, ArchError> {
    match v.find(&[key]) {
        Some(f) => match f.value.as_array() {
            Some(list) => Ok(list
                .first()
                .and_then(super::fields::as_u64)
                .unwrap_or(default)),
            None => v.u64_or(&[key], default),
        },
        None => Ok(default),
    }
}

fn matrix(rows: u64, cols: u64) -> Tensor {
    Tensor::matrix(Role::Vision, rows, cols, Split::Rows)
}

fn vector(n: u64) -> Tensor {
    Tensor::vector(n)
}

/// The names a tower formula sees beside the config keys (see `Part`).
struct Names<'s> {
    fixed: Vec<(&'static str, u64)>,
    scopes: Vec<&'s Scope<'s>>,
}

impl Names<'_> {
    fn value(&self, name: &str) -> Result<u64, ArchError> {
        if let Some((_, v)) = self.fixed.iter().find(|(n, _)| *n == name) {
            return Ok(*v);
        }
        if let Some(key) = name.strip_prefix("vqgan:") {
            let top = self.scopes[self.scopes.len().saturating_sub(2)];
            let Some(vq) = top.nested(key)? else {
                return Err(ArchError::field(
                    &top.field(key),
                    format!("missing required field '{}'", top.field(key)),
                ));
            };
            return vq_model(&vq, true);
        }
        // The modules sized by code (`f(self)`: of the encoder's own config).
        let own = self.scopes[0];
        match name {
            "vq_encoder:self" => return vq_model(own, false),
            "hmlp:self" => return hmlp(own),
            "moe_blocks:self" => return moe_blocks(own),
            "seanet:self" => return seanet(own),
            "conv_stages:self" => return conv_stages(own),
            _ => {}
        }
        // `top.<key>`: the top-level config's own key, which an encoder's may shadow.
        let (scopes, name) = match name.strip_prefix("top.") {
            Some(key) => (&self.scopes[self.scopes.len().saturating_sub(2)..], key),
            None => (&self.scopes[..], name),
        };
        for s in scopes {
            if let Some(v) = s.formula_value(name)? {
                return Ok(v);
            }
        }
        let at = self.scopes.first().map_or(String::new(), |s| s.field(name));
        Err(ArchError::field(
            &at,
            format!("missing required field '{at}' (used by towers.toml)"),
        ))
    }

    fn eval(&self, formula: &str) -> Result<u64, ArchError> {
        super::expr::eval(formula, &|n| self.value(n))
    }
}

/// The parameters of a VQ-GAN image tokenizer (models/janus/modeling_janus.py JanusVQVAE, the
/// Chameleon layout; models/apertus1p5/modeling_apertus1p5.py Apertus1p5VisionTokenizerModel, its
/// encoder half): an encoder of conv_in, per resolution level `num_res_blocks` ResNet blocks
/// (GroupNorm, 3×3 convs with biases, a 1×1 shortcut when the width changes), attention blocks
/// (GroupNorm, 1×1 q/k/v/proj with biases) at the levels whose resolution is in
/// `attn_resolutions` (the last level when the config has none), a downsampling conv between
/// levels, a mid block (two ResNet blocks around an attention block), norm_out and conv_out; the
/// quantizer's codebook and the 1×1 quant conv; with `decoder`, the post-quant conv and a decoder
/// mirroring the encoder with `num_res_blocks` + 1 blocks per level and upsampling convs. Written
/// as code: the widths follow `channel_multiplier` level by level, which a formula cannot loop
/// over.
fn vq_model(v: &Scope, decoder: bool) -> Result<u64, ArchError> {
    let base = v.req_u64(&["base_channels"])?;
    let (_, mult) = v.u64s(&["channel_multiplier"])?.unwrap_or_default();
    let blocks = v.req_u64(&["num_res_blocks"])?;
    let latent = v.req_u64(&["latent_channels"])?;
    let embed = v.req_u64(&["embed_dim"])?;
    let codes = v.req_u64(&["num_embeddings", "codebook_size"])?;
    let in_ch = v.u64_or(&["in_channels"], 3)?;
    let out_ch = v.u64_or(&["out_channels"], in_ch)?;
    let double = v.flag(&["double_latent"])?;
    if mult.is_empty() || mult.len() > 16 || blocks > 64 {
        return Err(ArchError::field(
            &v.field("channel_multiplier"),
            format!(
                "{} must list 1 to 16 levels (and num_res_blocks be at most 64)",
                v.field("channel_multiplier")
            ),
        ));
    }
    let levels = mult.len();
    // The levels with attention blocks: by resolution, or the last.
    let attn_at: Vec<bool> = match (v.u64s(&["attn_resolutions"])?, v.u64(&["resolution"])?) {
        (Some((_, res)), Some(r)) => (0..levels)
            .map(|l| res.contains(&(r >> l.min(63))))
            .collect(),
        _ => (0..levels).map(|l| l == levels - 1).collect(),
    };
    let conv3 = |o: u64, i: u64| o.saturating_mul(i).saturating_mul(9).saturating_add(o);
    let res = |i: u64, o: u64| {
        let shortcut = if i != o { o * i + o } else { 0 };
        2 * i + conv3(o, i) + 2 * o + conv3(o, o) + shortcut
    };
    let attn = |c: u64| 4 * c * c + 6 * c;
    let mid = |c: u64| 2 * res(c, c) + attn(c);
    let top_width = base.saturating_mul(mult[levels - 1]);
    // Encoder.
    let mut n = conv3(base, in_ch);
    let mut c = base;
    for (l, &m) in mult.iter().enumerate() {
        let out = base.saturating_mul(m);
        for _ in 0..blocks {
            n = n.saturating_add(res(c, out));
            c = out;
            if attn_at[l] {
                n = n.saturating_add(attn(c));
            }
        }
        if l != levels - 1 {
            n = n.saturating_add(conv3(c, c));
        }
    }
    let z = if double { 2 * latent } else { latent };
    n = n
        .saturating_add(mid(c))
        .saturating_add(2 * c)
        .saturating_add(conv3(z, c));
    // Quantizer and the 1×1 conv before it.
    n = n
        .saturating_add(codes.saturating_mul(embed))
        .saturating_add(embed * latent + embed);
    if !decoder {
        return Ok(n);
    }
    // The 1×1 conv after the quantizer, and the decoder.
    n = n.saturating_add(latent * embed + latent);
    let mut c = top_width;
    n = n.saturating_add(conv3(c, latent)).saturating_add(mid(c));
    for l in (0..levels).rev() {
        let out = base.saturating_mul(mult[l]);
        for _ in 0..=blocks {
            n = n.saturating_add(res(c, out));
            c = out;
            if attn_at[l] {
                n = n.saturating_add(attn(c));
            }
        }
        if l != 0 {
            n = n.saturating_add(conv3(c, c));
        }
    }
    Ok(n.saturating_add(2 * c).saturating_add(conv3(out_ch, c)))
}

/// Inkling's hierarchical-MLP vision encoder (models/inkling/modeling_inkling.py
/// InklingVisionModel, `plan_out_scales`): the (t, h, w, channels) scale of each of
/// `num_hidden_layers` + 1 stages is picked, by the least |log| distance to an even log-spaced
/// progression of the patch's size, among a base scale, spatial scales growing by the prime
/// factors of patch_size (channels h² × channels rounded up to 64) and temporal ones by those of
/// temporal_patch_size; each stage is a Linear [its channels, the previous channels × its
/// fold] without bias and an RMSNorm (the last projects to text_hidden_size, without a norm);
/// a final RMSNorm. Computed in f32 as torch does. Configs with fewer layers than candidate
/// scales need a linear-sum assignment (scipy), which is not reproduced: refused.
fn hmlp(v: &Scope) -> Result<u64, ArchError> {
    let patch = v.req_u64(&["patch_size"])?;
    let tpatch = v.u64_or(&["temporal_patch_size"], 1)?;
    let layers = v.req_u64(&["num_hidden_layers", "n_layers"])? as usize;
    let c = v.u64_or(&["num_channels"], 3)?;
    let text = v.req_u64(&["text_hidden_size"])?;
    if patch == 0 || patch > 4096 || tpatch == 0 || tpatch > 64 || layers == 0 || layers > 256 {
        return Err(ArchError::field(
            &v.field("patch_size"),
            format!(
                "{} / temporal_patch_size / num_hidden_layers are beyond any real model",
                v.field("patch_size")
            ),
        ));
    }
    let primes = |mut n: u64| {
        let mut f = Vec::new();
        while n > 0 && n.is_multiple_of(2) {
            f.push(2);
            n /= 2;
        }
        let mut p = 3;
        while p * p <= n {
            while n.is_multiple_of(p) {
                f.push(p);
                n /= p;
            }
            p += 2;
        }
        if n > 1 {
            f.push(n);
        }
        f
    };
    let cumprod = |f: Vec<u64>| -> Vec<u64> {
        let mut acc = 1u64;
        f.into_iter()
            .rev()
            .map(|x| {
                acc = acc.saturating_mul(x);
                acc
            })
            .collect()
    };
    let hs = cumprod(primes(patch));
    let ts = cumprod(primes(tpatch));
    let h_last = *hs.last().unwrap_or(&1);
    // (t, h, w, channels): base, spatial, temporal.
    let mut scales: Vec<[u64; 4]> = vec![[1, 1, 1, c]];
    for &h in &hs {
        scales.push([1, h, h, ((h * h * c) as f64 / 64.0).ceil() as u64 * 64]);
    }
    for &t in &ts {
        scales.push([t, h_last, h_last, (h_last * h_last * c * t) * 64]);
    }
    if layers < scales.len() {
        return Err(ArchError::field(
            &v.field("num_hidden_layers"),
            format!(
                "{} = {layers} is fewer than the encoder's {} candidate scales: its plan needs a linear-sum assignment vramplan does not reproduce",
                v.field("num_hidden_layers"),
                scales.len()
            ),
        ));
    }
    let total = (patch * patch * tpatch * c) as f32;
    let log_total = total.ln();
    let sizes: Vec<f32> = scales
        .iter()
        .map(|s| ((s[0] * s[1] * s[2]) as f32).ln())
        .collect();
    let mut picks: Vec<usize> = (0..=layers)
        .map(|i| {
            let ideal = log_total * i as f32 / layers as f32;
            let mut best = 0;
            for (j, &sz) in sizes.iter().enumerate() {
                if (ideal - sz).abs() < (ideal - sizes[best]).abs() {
                    best = j;
                }
            }
            best
        })
        .collect();
    picks[0] = 0;
    picks[layers] = scales.len() - 1;
    let mut n = 0u64;
    for i in 0..layers {
        let (a, e) = (scales[picks[i]], scales[picks[i + 1]]);
        let fold = (e[0] / a[0].max(1)) * (e[1] / a[1].max(1)) * (e[2] / a[2].max(1));
        let last = i == layers - 1;
        let out = if last { text } else { e[3] };
        n = n
            .saturating_add(a[3].saturating_mul(fold).saturating_mul(out))
            .saturating_add(if last { 0 } else { out });
    }
    Ok(n.saturating_add(text))
}

/// The MLPs of an encoder whose blocks are dense or routed by `mlp_layer_types`, with per-block
/// expert counts from `per_layer_config` (models/dots3_note/modeling_dots3_note.py
/// Dots3NoteVisionBlock: a gated MLP of intermediate_size, or a router [experts, h] and gated
/// experts of moe_intermediate_size, no biases). Code because the counts vary block by block.
fn moe_blocks(v: &Scope) -> Result<u64, ArchError> {
    let (_, types) = v.strings(&["mlp_layer_types"])?.unwrap_or_default();
    let h = v.req_u64(&["hidden_size"])?;
    let i = v.req_u64(&["intermediate_size"])?;
    let mi = v.u64_or(&["moe_intermediate_size"], i)?;
    let experts = v.u64_or(&["num_local_experts", "num_experts"], 0)?;
    let per_layer = v.object("per_layer_config")?;
    let mut n = 0u64;
    for (l, t) in types.iter().enumerate() {
        n = n.saturating_add(if t == "sparse" {
            let e = per_layer
                .and_then(|o| {
                    o.iter()
                        .find(|(k, _)| k.trim().parse::<usize>().ok() == Some(l))
                })
                .and_then(|(_, v)| v.get("num_local_experts"))
                .and_then(super::fields::as_u64)
                .unwrap_or(experts);
            super::check_limit(&v.field("num_local_experts"), e, super::limits::MAX_EXPERTS)?;
            e * h + e * 3 * h * mi
        } else {
            3 * h * i
        });
    }
    Ok(n)
}

/// The parameters of a SEANet audio encoder (models/wavtokenizer/modeling_wavtokenizer.py
/// WavTokenizerEncoder, the EnCodec layout): convolutions of `num_filters` channels doubling per
/// `upsampling_ratios` entry (taken in reverse), each stage `num_residual_layers` residual blocks
/// (a `residual_kernel_size` conv to dim / compress and a 1×1 conv back, a 1×1 shortcut conv when
/// use_conv_shortcut) and a strided conv of kernel 2 × ratio; an LSTM of `num_lstm_layers`; a
/// final conv to hidden_size. Each conv has a bias, and under weight_norm a gain per output
/// channel (norm_type "time_group_norm" instead adds a GroupNorm's weight and bias). Code
/// because the stages follow a list.
fn seanet(v: &Scope) -> Result<u64, ArchError> {
    let (_, ratios) = v.u64s(&["upsampling_ratios"])?.unwrap_or_default();
    if ratios.len() > 16 {
        return Err(ArchError::field(
            &v.field("upsampling_ratios"),
            format!("{} has more than 16 stages", v.field("upsampling_ratios")),
        ));
    }
    let filters = v.req_u64(&["num_filters"])?;
    let channels = v.u64_or(&["audio_channels"], 1)?;
    let kernel = v.req_u64(&["kernel_size"])?;
    let last_kernel = v.u64_or(&["last_kernel_size"], kernel)?;
    let res_kernel = v.req_u64(&["residual_kernel_size"])?;
    let residual = v.u64_or(&["num_residual_layers"], 1)?;
    let compress = v.u64_or(&["compress"], 2)?.max(1);
    let shortcut = v.flag(&["use_conv_shortcut"])?;
    let lstm_layers = v.u64_or(&["num_lstm_layers"], 0)?;
    let hidden = v.req_u64(&["hidden_size"])?;
    let per_channel = match v.string(&["norm_type"])?.as_deref() {
        Some("weight_norm") => 1,
        Some("time_group_norm") => 2,
        _ => 0,
    };
    let conv = |i: u64, o: u64, k: u64| {
        o.saturating_mul(i)
            .saturating_mul(k)
            .saturating_add(o * (1 + per_channel))
    };
    let mut n = conv(channels, filters, kernel);
    let mut dim = filters;
    for &ratio in ratios.iter().rev() {
        let block = conv(dim, dim / compress, res_kernel)
            + conv(dim / compress, dim, 1)
            + if shortcut { conv(dim, dim, 1) } else { 0 };
        n = n
            .saturating_add(residual.saturating_mul(block))
            .saturating_add(conv(dim, 2 * dim, 2 * ratio));
        dim *= 2;
    }
    let lstm = 8 * dim * dim + 8 * dim;
    Ok(n.saturating_add(lstm_layers.saturating_mul(lstm))
        .saturating_add(conv(dim, hidden, last_kernel)))
}

/// The parameters of Muse Spark's audio encoder (models/muse_spark/modeling_muse_spark.py
/// MuseSparkAudioModel): per stage s, a patch embedding Linear [hidden_sizes[s], in × patch_sizes[s]]
/// with bias and an RMSNorm (in = 1, then the previous stage's width), and depths[s] conv blocks
/// (a causal depthwise Conv1d [H, 1, conv_kernel_size] with bias, an RMSNorm, an MLP fc1/fc2 of
/// H × mlp_ratio with biases); a final RMSNorm, proj [out_hidden_size, last width] with bias and
/// post_proj_norm. Code because the stages are lists a formula cannot loop over.
fn conv_stages(v: &Scope) -> Result<u64, ArchError> {
    let (_, widths) = v.u64s(&["hidden_sizes"])?.unwrap_or_default();
    let (_, depths) = v.u64s(&["depths"])?.unwrap_or_default();
    let (_, patches) = v.u64s(&["patch_sizes"])?.unwrap_or_default();
    let stages = v.u64_or(&["num_hidden_layers"], widths.len() as u64)? as usize;
    if stages == 0 || stages > widths.len() || stages > depths.len() || stages > patches.len() {
        return Err(ArchError::field(
            &v.field("hidden_sizes"),
            format!(
                "{} needs hidden_sizes, depths and patch_sizes for each of its {stages} stages",
                v.field("num_hidden_layers")
            ),
        ));
    }
    let k = v.req_u64(&["conv_kernel_size"])?;
    let ratio = v.f64(&["mlp_ratio"])?.unwrap_or(4.0);
    let out = v.req_u64(&["out_hidden_size"])?;
    let mut n = 0u64;
    let mut input = 1u64;
    for s in 0..stages {
        let h = widths[s];
        let i = (h as f64 * ratio) as u64;
        let block = h * k + h + h + 2 * h * i + i + h;
        n = n
            .saturating_add((input * patches[s] + 1) * h + h)
            .saturating_add(depths[s].saturating_mul(block));
        input = h;
    }
    Ok(n.saturating_add(input + out * input + 2 * out))
}

/// A bias switch of an encoder: fixed, or the encoder config's key (default `default`).
fn toggle(t: &Option<Toggle>, v: &Scope, default: bool) -> Result<bool, ArchError> {
    match t {
        None => Ok(default),
        Some(Toggle::Fixed(b)) => Ok(*b),
        Some(Toggle::Key(k)) => Ok(v.bool(&[k.as_str()])?.unwrap_or(false)),
    }
}

/// The size of the timm model a TimmWrapper config names (modeling_timm_wrapper.py
/// TimmWrapperModel: `timm.create_model(architecture, num_classes=0, **model_args)`), if
/// `[timm.<architecture>]` has one for these model_args.
fn timm_params(v: &Scope) -> Result<Option<u64>, ArchError> {
    let arch = v.string(&["architecture"])?.unwrap_or_default();
    let args = v
        .find(&["model_args"])
        .map(|f| f.value.clone())
        .filter(|a| !a.is_null() && a.as_object().is_none_or(|o| !o.is_empty()));
    Ok(table()
        .timm
        .get(&arch)
        .filter(|m| m.model_args == args)
        .map(|m| m.params))
}

/// The parts' tensors: those of the container (pushed to `t`) and those that are tower lines
/// of their own (returned).
fn parts(
    list: &[Part],
    names: &Names,
    container: &str,
    t: &mut Vec<Tensor>,
    global: &mut Vec<(Stage, Tensor)>,
) -> Result<Vec<Tower>, ArchError> {
    let mut own = Vec::new();
    for part in list {
        let n = names.eval(&part.params)?;
        match part.tower.as_deref() {
            None => t.push(vector(n)),
            Some(kind) => {
                let kind = match kind {
                    "vision" => TowerKind::Vision,
                    "audio" => TowerKind::Audio,
                    "projector" => TowerKind::Projector,
                    "other" => TowerKind::Other,
                    other => {
                        return Err(ArchError::model(format!(
                            "towers.toml: unknown tower kind '{other}' in {container}"
                        )))
                    }
                };
                global.push((Stage::First, vector(n)));
                own.push(Tower {
                    kind,
                    name: part.name.clone(),
                    params: n,
                });
            }
        }
    }
    Ok(own)
}

/// An encoder's tensors (pushed to `out`): its parameter count, output width and layer count,
/// and the tower lines of its parts that stand on their own.
fn encoder(
    e: &Encoder,
    v: &Scope,
    b: &Builder,
    text_hidden: u64,
    out: &mut Vec<(Stage, Tensor)>,
) -> Result<(u64, u64, u64, Vec<Tower>), ArchError> {
    let layers = super::check_limit(
        &v.field("num_hidden_layers"),
        match &e.layers_key {
            Some(k) => v.u64_or(&[k.as_str()], 0)?,
            None => v.u64_or(
                &["num_hidden_layers", "depth", "num_layers", "encoder_layers"],
                0,
            )?,
        },
        super::limits::MAX_TOWER_LAYERS,
    )?;
    let h = super::check_limit(
        &v.field("hidden_size"),
        match &e.hidden_key {
            Some(k) => v.u64_or(&[k.as_str()], 0)?,
            None => v.u64_or(&["hidden_size", "embed_dim", "d_model", "width"], 0)?,
        },
        super::limits::MAX_HIDDEN_SIZE,
    )?;
    let i = match (
        &e.intermediate_key,
        v.u64(&["intermediate_size", "mlp_dim", "encoder_ffn_dim"])?,
    ) {
        (Some(k), _) => v.u64_or(&[k.as_str()], 0)?,
        (None, Some(w)) => w,
        (None, None) => match &e.mlp_ratio_key {
            Some(k) => (h as f64 * v.f64(&[k.as_str()])?.unwrap_or(4.0)) as u64,
            None => 4 * h,
        },
    };
    super::check_limit(
        &v.field("intermediate_size"),
        i,
        super::limits::MAX_INTERMEDIATE_SIZE,
    )?;
    let p = size_of(v, "patch_size", 14)?.max(1);
    let channels = v.u64_or(&["num_channels", "in_channels", "num_mel_bins"], 3)?;
    let heads = v.u64_or(
        &[
            "num_attention_heads",
            "num_heads",
            "encoder_attention_heads",
        ],
        0,
    )?;
    let names = Names {
        fixed: vec![
            ("h", h),
            ("i", i),
            ("layers", layers),
            ("p", p),
            ("c", channels),
            ("heads", heads),
            ("text_h", text_hidden),
        ],
        scopes: vec![v, b.top, b.text],
    };
    let norm = |n: u64| match e.norm.as_deref() {
        Some("rms") => n,
        _ => 2 * n,
    };
    let mut t: Vec<Tensor> = Vec::new();
    let mut out_width = h;
    if e.timm == Some(true) {
        // Checked by `towers` before: an architecture without a size is warned about there.
        t.push(vector(timm_params(v)?.unwrap_or(0)));
    } else if e.skeleton != Some(false) {
        // Patch embedding.
        match e.patch.as_deref().unwrap_or("conv2d") {
            "conv3d" => {
                let tp = v.u64_or(&["temporal_patch_size"], 2)?;
                t.push(matrix(h, channels * tp * p * p));
            }
            "conv1d_audio" => {
                // Whisper: conv1 [h, mels, 3] and conv2 [h, h, 3], both with bias.
                t.push(matrix(h, channels * 3));
                t.push(matrix(h, h * 3));
                t.push(vector(2 * h));
            }
            "none" => {}
            _ => t.push(matrix(h, channels * p * p)),
        }
        if toggle(&e.patch_bias, v, true)?
            && !matches!(e.patch.as_deref(), Some("conv1d_audio") | Some("none"))
        {
            t.push(vector(h));
        }
        let class = e.class_token.unwrap_or(false);
        if class {
            t.push(vector(h));
        }
        match e.positions.as_deref().unwrap_or("table") {
            "none" => {}
            "key" => {
                let key = e
                    .positions_key
                    .as_deref()
                    .unwrap_or("num_position_embeddings");
                let rows = v.u64_or(&[key], 0)?;
                t.push(Tensor::matrix(Role::Small, rows, h, Split::Replicated));
            }
            "grid" => {
                // MoonViT: a learnable [height, width, hidden] grid.
                let rows = v.u64_or(&["init_pos_emb_height"], 0)?
                    * v.u64_or(&["init_pos_emb_width"], 0)?;
                t.push(Tensor::matrix(Role::Small, rows, h, Split::Replicated));
            }
            _ => {
                let image = size_of(v, "image_size", 224)?;
                let rows = (image / p) * (image / p) + u64::from(class);
                t.push(Tensor::matrix(Role::Small, rows, h, Split::Replicated));
            }
        }
        if e.pre_norm.unwrap_or(false) {
            t.push(vector(norm(h)));
        }
        // Blocks: two norms, q/k/v/o, MLP ("none": the MLPs are a part of their own).
        let gated = e.mlp.as_deref() == Some("gated");
        let mlp_rows = match e.mlp.as_deref() {
            Some("gated") => 3 * i,
            Some("none") => 0,
            _ => 2 * i,
        };
        // Width of the k and v projections: h, or kv_heads × head_dim when grouped.
        let kv_width = match &e.kv_heads_key {
            Some(k) => v.u64_or(&[k.as_str()], heads)? * h.checked_div(heads).unwrap_or(0),
            None => h,
        };
        t.push(matrix(2 * h + 2 * kv_width, h).times(layers));
        t.push(Tensor::matrix(Role::Vision, h, mlp_rows, Split::Rows).times(layers));
        let mut small = 2 * norm(h);
        if toggle(&e.qkv_bias, v, true)? {
            small += if e.k_bias == Some(false) {
                h + kv_width
            } else {
                h + 2 * kv_width
            };
        }
        if toggle(&e.o_bias, v, true)? {
            small += h;
        }
        if toggle(&e.mlp_bias, v, true)? && mlp_rows > 0 {
            small += if gated { 2 * i + h } else { i + h };
        }
        if e.layer_scale == Some(true) {
            small += 2 * h;
        }
        if let Some(f) = &e.block_extra {
            small += names.eval(f)?;
        }
        t.push(vector(small).times(layers));
        if e.post_norm.unwrap_or(true) {
            t.push(vector(norm(h)));
        }
        if let Some(key) = &e.pool_head_key {
            if v.flag(&[key.as_str()])? {
                // SiglipMultiheadAttentionPoolingHead: probe [h], attention in_proj [3h, h] +
                // bias, out_proj [h, h] + bias, LayerNorm, MLP fc1/fc2 with biases.
                t.push(matrix(4 * h + 2 * i, h));
                t.push(vector(h + 3 * h + h + 2 * h + i + h));
            }
        }
        if e.adapter.as_deref() == Some("llama4_pixel_shuffle") {
            let pin = v.u64_or(&["projector_input_dim"], 4096)?;
            let pout = v.u64_or(&["projector_output_dim"], 4096)?;
            t.push(matrix(pin, i));
            t.push(matrix(pout, pout));
            out_width = v.u64_or(&["vision_output_dim"], pout)?;
        }
        if let Some(kind) = &e.merger {
            let m = v.u64_or(&["spatial_merge_size"], 2)?;
            let ctx = h * m * m;
            let dim = v.u64_or(&[e.out_key.as_deref().unwrap_or("out_hidden_size")], h)?;
            t.push(vector(if kind == "rms" { h } else { 2 * h }));
            t.push(matrix(ctx, ctx));
            t.push(matrix(dim, ctx));
            t.push(vector(ctx + dim));
            if e.deepstack == Some(true) {
                let n = v
                    .u64s(&["deepstack_visual_indexes"])?
                    .map_or(0, |(_, x)| x.len() as u64);
                t.push(matrix(ctx, ctx).times(n));
                t.push(matrix(dim, ctx).times(n));
                t.push(vector(2 * ctx + ctx + dim).times(n));
            }
            out_width = dim;
        }
    }
    if e.merger.is_none() && e.adapter.is_none() {
        if let Some(k) = &e.out_key {
            out_width = v.u64_or(&[k.as_str()], h)?;
        }
    }
    for key in &e.nested {
        let Some(n) = v.nested(key)? else {
            return Err(ArchError::field(
                &v.field(key),
                format!("missing required field '{}'", v.field(key)),
            ));
        };
        let nt = n.model_type().unwrap_or_default().to_string();
        let inner = table().encoder.get(&nt).ok_or_else(|| {
            ArchError::field(
                &n.field("model_type"),
                format!(
                    "the nested encoder '{}' is not described in towers.toml",
                    nt.chars().take(60).collect::<String>()
                ),
            )
        })?;
        // Counted as one vector in this encoder: its tensors are not split across ranks apart.
        let (p, ..) = encoder(inner, &n, b, text_hidden, &mut Vec::new())?;
        t.push(vector(p));
    }
    let own = parts(&e.parts, &names, "an encoder", &mut t, out)?;
    let params = t.iter().map(Tensor::elements).sum();
    out.extend(t.into_iter().map(|x| (Stage::First, x)));
    Ok((params, out_width, layers, own))
}

/// A projector's tensors and parameters, and the tower lines of its parts that stand alone.
fn projector(
    p: &Projector,
    b: &Builder,
    v: Option<&Scope>,
    vision_width: u64,
    text_hidden: u64,
    out: &mut Vec<(Stage, Tensor)>,
) -> Result<(u64, Vec<Tower>), ArchError> {
    let bias = match (&p.bias_key, p.bias) {
        (Some(k), d) => b.top.bool(&[k.as_str()])?.unwrap_or(d.unwrap_or(true)),
        (None, d) => d.unwrap_or(true),
    };
    let mut input = vision_width;
    if let Some(key) = &p.input_key {
        // An index (-1: the last layer) or a list of indices, concatenated.
        if let Some(f) = b.top.find(&[key.as_str()]) {
            if let Some(list) = f.value.as_array() {
                input = vision_width * list.len().max(1) as u64;
            }
        }
    }
    if let Some(k) = &p.input_scale_key {
        let f = b.top.u64_or(&[k.as_str()], 1)?;
        input = input.saturating_mul(f * f);
    }
    if let Some(f) = p.input_factor {
        input = input.saturating_mul(f);
    }
    let b1 = |n: u64| if bias { n } else { 0 };
    let mut t: Vec<Tensor> = Vec::new();
    if p.input_norm == Some(true) {
        t.push(vector(2 * input));
    }

    match p.kind.as_str() {
        "mlp2" => {
            t.push(matrix(text_hidden, input));
            t.push(matrix(text_hidden, text_hidden));
            t.push(vector(b1(2 * text_hidden)));
        }
        "linear" => {
            t.push(matrix(text_hidden, input));
            t.push(vector(b1(text_hidden)));
        }
        "gemma3" => {
            t.push(matrix(vision_width, text_hidden));
            t.push(vector(vision_width));
        }
        "merge_mlp2" => {
            // Kimi-VL: LayerNorm over the vision width, then linear_1 and linear_2 (with biases)
            // over the merge_kernel_size patches merged.
            let m2 = v
                .and_then(|v| v.u64s(&["merge_kernel_size"]).ok().flatten())
                .map_or(4, |(_, k)| k.iter().product::<u64>());
            let merged = vision_width * m2;
            t.push(vector(2 * vision_width));
            t.push(matrix(merged, merged));
            t.push(matrix(text_hidden, merged));
            t.push(vector(b1(merged + text_hidden)));
        }
        "mistral3" => {
            let m = b.top.u64_or(&["spatial_merge_size"], 2)?;
            t.push(vector(vision_width));
            t.push(matrix(vision_width, vision_width * m * m));
            t.push(matrix(text_hidden, input));
            t.push(matrix(text_hidden, text_hidden));
            t.push(vector(b1(2 * text_hidden)));
        }
        // Only `parts`, or nothing (the merger is part of the vision model).
        "none" | "parts" => {}
        other => {
            return Err(ArchError::model(format!(
                "towers.toml: unknown projector kind '{other}'"
            )))
        }
    }
    if p.image_newline == Some(true) {
        t.push(vector(text_hidden));
    }
    let mut scopes: Vec<&Scope> = Vec::new();
    if let Some(v) = v {
        scopes.push(v);
    }
    scopes.push(b.top);
    scopes.push(b.text);
    let names = Names {
        fixed: vec![("in", vision_width), ("text_h", text_hidden)],
        scopes,
    };
    let own = parts(&p.parts, &names, "a projector", &mut t, out)?;
    let params = t.iter().map(Tensor::elements).sum();
    out.extend(t.into_iter().map(|x| (Stage::First, x)));
    Ok((params, own))
}

/// Towers of a multimodal config, their tensors appended to `global`.
pub(crate) fn towers(
    b: &Builder,
    basics: &Basics,
    global: &mut Vec<(Stage, Tensor)>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Tower>, ArchError> {
    let mut out = Vec::new();
    let top = b.top;
    let top_type = top.model_type().unwrap_or_default().to_string();
    let doc = table();
    // The width and scope of the first encoder described (the vision encoder if there is one),
    // which the projector reads.
    let mut first: Option<(u64, Scope)> = None;
    let vlm = top.nested("vlm_config")?;
    for (key, kind) in [
        ("vision_config", TowerKind::Vision),
        // DeepSeek-VL hybrid's SAM encoder beside its SigLIP one.
        ("high_res_vision_config", TowerKind::Vision),
        ("audio_config", TowerKind::Audio),
    ] {
        // The encoder's config: at the top level, or in a nested VLM config (pi0).
        let v = match (top.nested(key)?, &vlm) {
            (Some(v), _) => v,
            (None, Some(vlm)) => match vlm.nested(key)? {
                Some(v) => v,
                None => continue,
            },
            (None, None) => continue,
        };
        let vt = v.model_type().unwrap_or_default().to_string();
        let Some(e) = doc.encoder.get(&vt) else {
            warnings.push(format!(
                "the {key} encoder '{}' is not described: its parameters are not counted (weights too low by its size)",
                if vt.is_empty() { "(unnamed)" } else { &vt }
            ));
            continue;
        };
        if e.timm == Some(true) && timm_params(&v)?.is_none() {
            warnings.push(format!(
                "the {key} timm model '{}' (with its model_args) has no size in towers.toml: its parameters are not counted (weights too low by its size)",
                v.string(&["architecture"])?.unwrap_or_default().chars().take(60).collect::<String>()
            ));
            continue;
        }
        let (params, width, layers, own) = encoder(e, &v, b, basics.hidden, global)?;
        // Further copies of the vision encoder the model holds (Video-LLaVA's video tower).
        let copies = doc
            .projector
            .get(&top_type)
            .and_then(|p| p.encoder_copies)
            .unwrap_or(1);
        if kind == TowerKind::Vision && copies > 1 {
            for c in 1..copies {
                let (p2, _, _, _) = encoder(e, &v, b, basics.hidden, global)?;
                out.push(Tower {
                    kind: TowerKind::Vision,
                    name: format!("{vt} encoder, copy {}", c + 1),
                    params: p2,
                });
            }
        }
        out.push(Tower {
            kind: match e.kind.as_deref() {
                Some("audio") => TowerKind::Audio,
                Some("vision") => TowerKind::Vision,
                _ => kind,
            },
            name: if layers > 0 {
                format!("{vt} encoder ({layers} layers)")
            } else {
                format!("{vt} encoder")
            },
            params,
        });
        out.extend(own);
        if first.is_none() {
            first = Some((width, v));
        }
    }
    // The top-level family's own vision embedding (Fuyu), whatever family the text model is.
    let top_fam = super::family::family(&top_type);
    if let Some(f) = top_fam
        .and_then(|f| f.tower_extra.as_ref())
        .or(b.fam.tower_extra.as_ref())
    {
        let n = b.formula(f, basics, None)?;
        global.push((Stage::First, vector(n)));
        out.push(Tower {
            kind: TowerKind::Vision,
            name: "vision patch embedding".into(),
            params: n,
        });
    }
    match (doc.projector.get(&top_type), &first) {
        (Some(p), _) if first.is_some() || !p.parts.is_empty() => {
            let (w, v) = match &first {
                Some((w, v)) => (*w, Some(v)),
                None => (0, None),
            };
            let (params, own) = projector(p, b, v, w, basics.hidden, global)?;
            if params > 0 {
                out.push(Tower {
                    kind: TowerKind::Projector,
                    name: "multimodal projector".into(),
                    params,
                });
            }
            out.extend(own);
        }
        (None, Some(_)) => warnings.push(format!(
            "the projector of '{top_type}' between its encoder and the text model is not described: not counted"
        )),
        _ => {}
    }
    Ok(out)
}
