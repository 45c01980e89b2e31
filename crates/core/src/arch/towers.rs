//! Vision and audio towers and their projectors: counted in the weights (first pipeline stage,
//! kept in 16-bit by the quantization recipes) and reported as their own lines, so `params` is
//! the whole checkpoint's count as transformers builds it and `text_params` the language model's.
//!
//! Encoders are ViT-shaped (patch embedding, optional class token and position table, N blocks
//! of norm / q k v o / norm / MLP, optional pre- and post-norms, optional patch merger); what
//! varies between families (norm kind, biases, gated MLP, Conv3d patches, mergers, pooling head)
//! is data: `data/transformers/towers.toml`, one entry per vision/audio model_type and per
//! projector, each with the modeling file of transformers 5.24.0 it was read from.

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
    #[serde(default)]
    qkv_bias: Option<bool>,
    /// Key projection without bias while q and v have one (Whisper).
    #[serde(default)]
    k_bias: Option<bool>,
    #[serde(default)]
    o_bias: Option<bool>,
    /// "plain" (fc1, fc2) or "gated" (gate, up, down).
    #[serde(default)]
    mlp: Option<String>,
    #[serde(default)]
    mlp_bias: Option<bool>,
    /// MLP width = hidden × this config key (Qwen2-VL `mlp_ratio`) when no intermediate_size.
    #[serde(default)]
    mlp_ratio_key: Option<String>,
    /// "conv2d" (hidden × channels·p·p), "conv3d" (× temporal_patch_size), "conv1d_audio"
    /// (Whisper: two Conv1d of kernel 3 over num_mel_bins), "linear" (unfold + Linear).
    #[serde(default)]
    patch: Option<String>,
    #[serde(default)]
    patch_bias: Option<bool>,
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
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    encoder: HashMap<String, Encoder>,
    #[serde(default)]
    projector: HashMap<String, Projector>,
}

fn table() -> &'static Doc {
    static T: OnceLock<Doc> = OnceLock::new();
    // Compiled in and checked by the tests: a failure here is a build defect.
    T.get_or_init(|| toml::from_str(FILE).expect("towers.toml parses"))
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

/// An encoder's tensors (pushed to `out`), its parameter count and output width.
fn encoder(
    e: &Encoder,
    v: &Scope,
    out: &mut Vec<(Stage, Tensor)>,
) -> Result<(u64, u64, u64), ArchError> {
    let layers = super::check_limit(
        &v.field("num_hidden_layers"),
        v.u64_or(
            &["num_hidden_layers", "depth", "num_layers", "encoder_layers"],
            0,
        )?,
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
    let i = match v.u64(&["intermediate_size", "mlp_dim", "encoder_ffn_dim"])? {
        Some(w) => w,
        None => match &e.mlp_ratio_key {
            Some(k) => (h as f64 * v.f64(&[k.as_str()])?.unwrap_or(4.0)) as u64,
            None => 4 * h,
        },
    };
    super::check_limit(
        &v.field("intermediate_size"),
        i,
        super::limits::MAX_INTERMEDIATE_SIZE,
    )?;
    let norm = |n: u64| match e.norm.as_deref() {
        Some("rms") => n,
        _ => 2 * n,
    };
    let mut t: Vec<Tensor> = Vec::new();
    // Patch embedding.
    let p = size_of(v, "patch_size", 14)?.max(1);
    let channels = v.u64_or(&["num_channels", "in_channels", "num_mel_bins"], 3)?;
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
        _ => t.push(matrix(h, channels * p * p)),
    }
    if e.patch_bias.unwrap_or(true) && e.patch.as_deref() != Some("conv1d_audio") {
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
            let rows =
                v.u64_or(&["init_pos_emb_height"], 0)? * v.u64_or(&["init_pos_emb_width"], 0)?;
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
    // Blocks: two norms, q/k/v/o, MLP.
    let gated = e.mlp.as_deref() == Some("gated");
    let mlp_rows = if gated { 3 * i } else { 2 * i };
    t.push(matrix(4 * h, h).times(layers));
    t.push(Tensor::matrix(Role::Vision, h, mlp_rows, Split::Rows).times(layers));
    let mut small = 2 * norm(h);
    if e.qkv_bias.unwrap_or(true) {
        small += if e.k_bias == Some(false) {
            2 * h
        } else {
            3 * h
        };
    }
    if e.o_bias.unwrap_or(true) {
        small += h;
    }
    if e.mlp_bias.unwrap_or(true) {
        small += if gated { 2 * i + h } else { i + h };
    }
    if e.layer_scale == Some(true) {
        small += 2 * h;
    }
    t.push(vector(small).times(layers));
    if e.post_norm.unwrap_or(true) {
        t.push(vector(norm(h)));
    }
    if let Some(key) = &e.pool_head_key {
        if v.flag(&[key.as_str()])? {
            // SiglipMultiheadAttentionPoolingHead: probe [h], attention in_proj [3h, h] + bias,
            // out_proj [h, h] + bias, LayerNorm, MLP fc1/fc2 with biases.
            t.push(matrix(4 * h + 2 * i, h));
            t.push(vector(h + 3 * h + h + 2 * h + i + h));
        }
    }
    let mut out_width = h;
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
    let params = t.iter().map(Tensor::elements).sum();
    out.extend(t.into_iter().map(|x| (Stage::First, x)));
    Ok((params, out_width, layers))
}

/// A projector's tensors and parameters.
fn projector(
    p: &Projector,
    b: &Builder,
    v: Option<&Scope>,
    vision_width: u64,
    text_hidden: u64,
    out: &mut Vec<(Stage, Tensor)>,
) -> Result<u64, ArchError> {
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
        "none" => {}
        other => {
            return Err(ArchError::model(format!(
                "towers.toml: unknown projector kind '{other}'"
            )))
        }
    }
    if p.image_newline == Some(true) {
        t.push(vector(text_hidden));
    }
    let params = t.iter().map(Tensor::elements).sum();
    out.extend(t.into_iter().map(|x| (Stage::First, x)));
    Ok(params)
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
    let mut vision: Option<(u64, Scope)> = None;
    for (key, kind) in [
        ("vision_config", TowerKind::Vision),
        ("audio_config", TowerKind::Audio),
    ] {
        let sub = top.class.and_then(|c| c.sub_config(key));
        let obj = match top.object(key)? {
            Some(o) => o,
            None => continue,
        };
        let v = Scope::new(obj, &format!("{key}."), sub);
        let vt = v.model_type().unwrap_or_default().to_string();
        let Some(e) = doc.encoder.get(&vt) else {
            warnings.push(format!(
                "the {key} encoder '{}' is not described: its parameters are not counted (weights too low by its size)",
                if vt.is_empty() { "(unnamed)" } else { &vt }
            ));
            continue;
        };
        let (params, width, layers) = encoder(e, &v, global)?;
        // Further copies of the vision encoder the model holds (Video-LLaVA's video tower).
        let copies = doc
            .projector
            .get(&top_type)
            .and_then(|p| p.encoder_copies)
            .unwrap_or(1);
        if kind == TowerKind::Vision && copies > 1 {
            for c in 1..copies {
                let (p2, _, _) = encoder(e, &v, global)?;
                out.push(Tower {
                    kind: TowerKind::Vision,
                    name: format!("{vt} encoder, copy {}", c + 1),
                    params: p2,
                });
            }
        }
        out.push(Tower {
            kind: if e.kind.as_deref() == Some("audio") {
                TowerKind::Audio
            } else {
                kind
            },
            name: format!("{vt} encoder ({layers} layers)"),
            params,
        });
        if kind == TowerKind::Vision {
            vision = Some((width, v));
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
    if let Some((w, v)) = &vision {
        match doc.projector.get(&top_type) {
            Some(p) => {
                let params = projector(p, b, Some(v), *w, basics.hidden, global)?;
                if params > 0 {
                    out.push(Tower {
                        kind: TowerKind::Projector,
                        name: "multimodal projector".into(),
                        params,
                    });
                }
            }
            None => warnings.push(format!(
                "the projector of '{top_type}' between its vision encoder and the text model is not described: not counted"
            )),
        }
    }
    Ok(out)
}
