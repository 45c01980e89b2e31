//! Layers that run again with the same weights: each run is a decoder layer of the description,
//! in execution order, with its own cache slot (or another run's), and only the first run holds
//! the weights (`Layer::weights_from` on the others), so parameters are counted once and the
//! cache as transformers allocates it.
//!
//! - Dory (`modeling_dory.py` DoryModel.forward): the `n_recurrent_layers` layers from
//!   `n_input_layers` on run `n_recurrent_loops` times; with `recurrent_kv_cache_mode` "per_loop"
//!   each run appends its own copies of those cache layers (`cache.layers += [copy.deepcopy(c)
//!   ...]`), with "last_loop" only the last run writes and the earlier ones read it.
//! - Inkling 2 loop (`modeling_inkling2_loop.py`): layers loop_layer_index_start ≤ i <
//!   loop_layer_index_end run loop_num_passes times, each pass in its own cache slots
//!   (`cache_offset`).
//! - LongCat-Flash (`modeling_longcat_flash.py` LongcatFlashDecoderLayer): each config layer
//!   holds two MLA sublayers (cache slots `layer_idx * 2 + i`), two dense MLPs and the layer's
//!   MoE: described as two layers, the MoE on the first.
//! - HRM (`modeling_hrm_text.py` HrmTextModel.forward): `num_hidden_layers` cache slots, slot
//!   (h × (L_cycles + 1) + l) × num_layers_per_stack + layer running layer `layer` of the L stack
//!   for l < L_cycles and of the H stack for l = L_cycles, over H_cycles.

use super::layers::{FfnPlan, Mixer, Plan};
use super::{ArchError, Builder};

/// The plans with every rerun section expanded.
pub(crate) fn expand(b: &Builder, plans: Vec<Plan>) -> Result<Vec<Plan>, ArchError> {
    if b.fam.hrm_cycles == Some(true) {
        return hrm(b, plans);
    }
    if b.fam.paired_sublayers == Some(true) {
        let dense = b.text.req_u64(&["ffn_hidden_size", "intermediate_size"])?;
        let mut out = Vec::with_capacity(plans.len().saturating_mul(2));
        for p in plans {
            let mut second = p.clone();
            second.ffn = FfnPlan::Dense(dense);
            out.push(p);
            out.push(second);
        }
        return Ok(out);
    }
    let (Some(start), Some(times)) = (&b.fam.loop_start_key, &b.fam.loop_times_key) else {
        return Ok(plans);
    };
    let t = b.text;
    let halve = b.fam.paired_blocks == Some(true)
        && t.strings(&["layer_types"])?
            .is_some_and(|(_, l)| l.iter().any(|x| x == "mlp"));
    let div = if halve { 2 } else { 1 };
    let n = plans.len();
    let start_at = t.req_u64(&[start.as_str()])? as usize / div;
    let count_field = b
        .fam
        .loop_count_key
        .as_deref()
        .or(b.fam.loop_end_key.as_deref())
        .unwrap_or(start.as_str());
    let len = match (&b.fam.loop_count_key, &b.fam.loop_end_key) {
        (Some(count), _) => match t.u64(&[count.as_str()])? {
            Some(c) => c as usize / div,
            // configuration_dory.py: the layers between the input and output sections.
            None => n.saturating_sub(start_at + t.u64_or(&["n_output_layers"], 0)? as usize / div),
        },
        // Inkling 2 loop: layers loop_layer_index_start ≤ i < loop_layer_index_end.
        (None, Some(end)) => (t.req_u64(&[end.as_str()])? as usize).saturating_sub(start_at),
        (None, None) => 0,
    };
    let runs = t.u64_or(&[times.as_str()], 1)?;
    let field = t.field(times);
    if runs == 0 || runs > 64 {
        return Err(ArchError::field(
            &field,
            format!("{field} = {runs} must be between 1 and 64"),
        ));
    }
    if start_at + len > n {
        return Err(ArchError::field(
            &t.field(count_field),
            format!(
                "{} layers from layer {start_at} run past the model's {n}",
                t.field(count_field)
            ),
        ));
    }
    let mut plans = plans;
    for p in &mut plans[start_at..start_at + len] {
        p.in_loop = true;
    }
    let shared_cache = match &b.fam.loop_cache_key {
        Some(k) => t.string(&[k.as_str()])?.as_deref() == Some("last_loop"),
        None => false,
    };
    let mut out = Vec::with_capacity(n + len * (runs as usize - 1));
    out.extend(plans[..start_at + len].iter().cloned());
    for _ in 1..runs {
        for (i, plan) in plans.iter().enumerate().skip(start_at).take(len) {
            let mut p = plan.clone();
            p.weights_from = Some(i as u32);
            p.in_loop = false;
            if shared_cache {
                if let Mixer::Attention { source, .. } = &mut p.mixer {
                    *source = Some(i as u32);
                }
            }
            out.push(p);
        }
    }
    out.extend(plans[start_at + len..].iter().cloned());
    Ok(out)
}

/// HRM: slot s runs layer `s % S` of the L stack or the H stack; the first slot running each
/// layer holds its weights.
fn hrm(b: &Builder, plans: Vec<Plan>) -> Result<Vec<Plan>, ArchError> {
    let t = b.text;
    let per_stack = t.req_u64(&["num_layers_per_stack"])?.max(1) as usize;
    let l_cycles = t.req_u64(&["L_cycles"])? as usize;
    let mut out = plans;
    for (s, p) in out.iter_mut().enumerate() {
        let layer = s % per_stack;
        let l = (s / per_stack) % (l_cycles + 1);
        let owner = if l < l_cycles {
            layer
        } else {
            l_cycles * per_stack + layer
        };
        if owner != s {
            p.weights_from = Some(owner as u32);
        }
    }
    Ok(out)
}
