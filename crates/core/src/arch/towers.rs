//! Vision and audio towers and their projectors: counted in the weights (first pipeline stage,
//! kept in 16-bit by the quantization recipes) and reported as their own line.
//!
//! A ViT encoder (`modeling_clip.py` CLIPEncoderLayer, `modeling_siglip.py`): per layer two
//! LayerNorms, q/k/v/o with biases and a two-matrix MLP with biases; patch embedding
//! [hidden, channels·p·p] (+ bias), position table [patches (+1 class token), hidden].

use super::fields::Scope;
use super::{ArchError, Basics, Builder};
use crate::model::{Role, Split, Stage, Tensor, Tower, TowerKind};

fn matrix(rows: u64, cols: u64) -> Tensor {
    Tensor::matrix(Role::Vision, rows, cols, Split::Rows)
}

/// One ViT-style encoder from its config scope: returns its parameter count after pushing its
/// tensors.
fn vit(v: &Scope, out: &mut Vec<(Stage, Tensor)>) -> Result<(u64, u64, u64), ArchError> {
    let layers = super::check_limit(
        &v.field("num_hidden_layers"),
        v.u64_or(&["num_hidden_layers", "depth", "num_layers", "encoder_layers"], 0)?,
        super::limits::MAX_TOWER_LAYERS,
    )?;
    let h = super::check_limit(
        &v.field("hidden_size"),
        v.u64_or(&["hidden_size", "embed_dim", "d_model", "width"], 0)?,
        super::limits::MAX_HIDDEN,
    )?;
    let i = v.u64_or(&["intermediate_size", "mlp_dim", "encoder_ffn_dim"], 4 * h)?;
    let p = v.u64_or(&["patch_size"], 14)?.max(1);
    let image = v.u64_or(&["image_size"], 224)?;
    let channels = v.u64_or(&["num_channels", "in_channels"], 3)?;
    let start = out.len();
    out.push((Stage::First, matrix(h, channels * p * p)));
    let patches = (image / p) * (image / p);
    out.push((Stage::First, Tensor::vector(h + patches * h)));
    out.push((Stage::First, matrix(4 * h + 2 * i, h).times(layers)));
    out.push((Stage::First, Tensor::vector(4 * h + 4 * h + i + h).times(layers)));
    out.push((Stage::First, Tensor::vector(2 * h)));
    let params = out[start..].iter().map(|(_, t)| t.elements()).sum();
    Ok((params, h, layers))
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
    if let Some(obj) = top.object("vision_config")? {
        let sub = top.class.and_then(|c| c.sub_config("vision_config"));
        let v = Scope::new(obj, "vision_config.", sub);
        let (params, vh, layers) = vit(&v, global)?;
        let kind = v.model_type().unwrap_or("vision").to_string();
        out.push(Tower {
            kind: TowerKind::Vision,
            name: format!("{kind} encoder ({layers} layers, hidden {vh})"),
            params,
        });
        // A linear projector from the encoder to the text model's width.
        let proj = vh * basics.hidden + basics.hidden;
        global.push((Stage::First, matrix(basics.hidden, vh)));
        global.push((Stage::First, Tensor::vector(basics.hidden)));
        out.push(Tower {
            kind: TowerKind::Projector,
            name: "multimodal projector".into(),
            params: proj,
        });
        warnings.push(format!(
            "the vision tower ({kind}) is sized as a generic ViT with a linear projector"
        ));
    }
    if top.object("audio_config")?.is_some() {
        warnings.push("the audio tower is not counted".into());
    }
    Ok(out)
}
