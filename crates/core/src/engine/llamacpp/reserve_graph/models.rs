//! llama.cpp's model builders (src/models/<arch>.cpp at 0c1e57098), one function each, written
//! in the order of their ggml calls and `ggml_build_forward_expand`s so that the node order —
//! which decides ggml-alloc's peak — is llama.cpp's.

use super::{AttnInp, AttnOpts, Builder, Ctx, FfnKind, Gating, MoeOpts, RsInp};
use crate::engine::llamacpp::ggml_alloc::{Dtype, Id, Op};
use crate::layer::{Attention, Ffn, RecurrentKind, Span};
use crate::model::{ModelDesc, NormKind, Role};

/// Whether every layer is an attention layer caching its own K and V with equal K and V head
/// widths and RoPE over the whole head (what the attention-only builders assume).
fn plain_attention(model: &ModelDesc) -> bool {
    model.layers().all(|l| {
        l.recurrent.is_none()
            && l.attention.as_ref().is_some_and(|a| {
                a.caches()
                    && a.latent.is_none()
                    && a.indexer.is_none()
                    && a.k_head_dim == a.v_head_dim
            })
    })
}

fn gated_dense(f: &Ffn) -> bool {
    matches!(
        f,
        Ffn::Dense {
            gated: true,
            bias: false,
            ..
        }
    )
}

pub(super) fn builder_for(model: &ModelDesc) -> Option<Builder> {
    if !model.towers.is_empty() || model.num_layers == 0 {
        return None;
    }
    let first = model.first_attention();
    let qkv_bias = first.is_some_and(|a| a.qkv_bias);
    let qk_norm = first.is_some_and(|a| a.qk_norm);
    let windowed = model
        .layers()
        .any(|l| l.attention.as_ref().is_some_and(|a| a.span != Span::Full));
    let honours_swa = super::super::honours_sliding_window(model);
    let rms = model.norm == NormKind::Rms;
    let ffn_ok = |dense_gated: bool, moe_gated: bool| {
        model.layers().all(|l| match &l.ffn {
            Ffn::Dense { gated, bias, .. } => *gated == dense_gated && !bias,
            Ffn::Moe { gated, .. } => *gated == moe_gated,
            Ffn::None => false,
        })
    };
    let no_sinks = model
        .layers()
        .all(|l| l.attention.as_ref().is_none_or(|a| !a.sinks && !a.o_bias));
    let b = match model.model_type.as_str() {
        "llama" | "mistral" | "mistral3" | "mixtral" if !qkv_bias && !qk_norm => {
            Builder::Llama { qkv_bias, qk_norm }
        }
        "qwen2" if !qk_norm => Builder::Llama { qkv_bias, qk_norm },
        "qwen3" | "qwen3_moe" if !qkv_bias => Builder::Llama { qkv_bias, qk_norm },
        "gemma" => Builder::Gemma,
        "gemma2" => Builder::Gemma2,
        "gemma3" | "gemma3_text" => Builder::Gemma3,
        "phi3" => Builder::Phi3,
        "falcon" => Builder::Falcon,
        "starcoder2" => Builder::Starcoder2,
        "llama4" | "llama4_text" => Builder::Llama4,
        "gpt_oss" => Builder::GptOss,
        "deepseek_v2" | "deepseek_v3" => Builder::Deepseek2,
        "mamba" | "mamba2" => Builder::Mamba,
        "granitemoehybrid" => Builder::GraniteHybrid,
        "nemotron_h" => Builder::NemotronH,
        "jamba" => Builder::Jamba,
        "lfm2" => Builder::Lfm2,
        "qwen3_next" => Builder::Qwen3Next,
        "gemma3n" | "gemma3n_text" => Builder::Gemma3n,
        _ => return None,
    };
    let ok = match b {
        Builder::Llama { .. } => {
            rms && plain_attention(model)
                && no_sinks
                && !(windowed && honours_swa)
                && ffn_ok(true, true)
        }
        Builder::Gemma | Builder::Gemma2 | Builder::Gemma3 => {
            rms && plain_attention(model) && no_sinks && model.layers().all(|l| gated_dense(&l.ffn))
        }
        Builder::Phi3 => {
            rms && plain_attention(model) && no_sinks && model.layers().all(|l| gated_dense(&l.ffn))
        }
        Builder::Falcon => {
            !rms && plain_attention(model)
                && model
                    .layers()
                    .all(|l| matches!(l.ffn, Ffn::Dense { gated: false, .. }) && l.norms == 1)
        }
        Builder::Starcoder2 => {
            !rms && plain_attention(model)
                && model
                    .layers()
                    .all(|l| matches!(l.ffn, Ffn::Dense { gated: false, .. }))
        }
        Builder::Llama4 => rms && plain_attention(model) && ffn_ok(true, true),
        Builder::GptOss => rms && plain_attention(model) && ffn_ok(true, true),
        Builder::Deepseek2 => {
            rms && model.layers().all(|l| {
                l.attention
                    .as_ref()
                    .is_some_and(|a| a.latent.is_some() && a.indexer.is_none())
            }) && ffn_ok(true, true)
        }
        Builder::Mamba => model.layers().all(|l| {
            l.attention.is_none() && matches!(l.ffn, Ffn::None) && ssm_dims(model, l).is_some()
        }),
        Builder::GraniteHybrid | Builder::Jamba => model.layers().all(|l| {
            (l.attention.is_some() != l.recurrent.is_some())
                && l.recurrent
                    .as_ref()
                    .is_none_or(|_| ssm_dims(model, l).is_some())
                && !matches!(l.ffn, Ffn::None)
        }),
        Builder::NemotronH => model.layers().all(|l| {
            let mixers = usize::from(l.attention.is_some())
                + usize::from(l.recurrent.is_some())
                + usize::from(!matches!(l.ffn, Ffn::None));
            mixers == 1
                && l.recurrent
                    .as_ref()
                    .is_none_or(|_| ssm_dims(model, l).is_some())
                && matches!(l.ffn, Ffn::None | Ffn::Dense { gated: false, .. })
        }),
        Builder::Lfm2 => model.layers().all(|l| {
            (l.attention.is_some()
                || l.recurrent
                    .as_ref()
                    .is_some_and(|r| r.kind == RecurrentKind::ShortConv))
                && gated_dense(&l.ffn)
        }),
        Builder::Qwen3Next => {
            rms && model.layers().all(|l| {
                let gdn = l
                    .recurrent
                    .as_ref()
                    .is_some_and(|r| r.kind == RecurrentKind::GatedDeltaNet);
                let attn = l.attention.as_ref().is_some_and(|a| {
                    a.caches() && a.latent.is_none() && a.k_head_dim == a.v_head_dim && a.qk_norm
                });
                (gdn != attn)
                    && (!gdn || gdn_dims(l).is_some())
                    && matches!(l.ffn, Ffn::Moe { gated: true, .. })
            })
        }
        Builder::Gemma3n => {
            rms && model.layers().all(|l| {
                l.recurrent.is_none()
                    && gated_dense(&l.ffn)
                    && l.attention.as_ref().is_some_and(|a| {
                        a.latent.is_none() && a.k_head_dim == a.v_head_dim && !a.sinks
                    })
            })
        }
    };
    ok.then_some(b)
}

pub(super) fn build(c: &mut Ctx, b: Builder) {
    match b {
        Builder::Llama { qkv_bias, qk_norm } => llama(c, qkv_bias, qk_norm),
        Builder::Gemma | Builder::Gemma2 | Builder::Gemma3 => gemma(c, b),
        Builder::Phi3 => phi3(c),
        Builder::Falcon => falcon(c),
        Builder::Starcoder2 => starcoder2(c),
        Builder::Llama4 => llama4(c),
        Builder::GptOss => gpt_oss(c),
        Builder::Deepseek2 => deepseek2(c),
        Builder::Mamba => mamba(c),
        Builder::GraniteHybrid => granite_hybrid(c),
        Builder::NemotronH => nemotron_h(c),
        Builder::Jamba => jamba(c),
        Builder::Lfm2 => lfm2(c),
        Builder::Qwen3Next => qwen3next(c),
        Builder::Gemma3n => gemma3n(c),
    }
}

/// Whether the model's attention uses an iSWA cache (a windowed or chunked layer, in an
/// architecture llama.cpp gives sliding windows).
fn iswa(c: &Ctx) -> bool {
    super::super::honours_sliding_window(c.m)
        && c.m
            .layers()
            .any(|l| l.attention.as_ref().is_some_and(|a| a.span != Span::Full))
}

fn att(c: &Ctx, il: u64) -> Attention {
    c.attention(il).expect("an attention layer").clone()
}

/// A routed block of `il` as most builders call build_moe_ffn.
fn moe_opts(c: &Ctx, il: u64, gating: Gating, norm_w: bool) -> Option<MoeOpts> {
    let Ffn::Moe { moe, gated } = &c.layer(il).ffn else {
        return None;
    };
    Some(MoeOpts {
        experts: moe.num_experts,
        used: moe.experts_per_token,
        width: moe.expert_intermediate_size,
        gating,
        probs_bias: false,
        norm_w,
        scale_w: false,
        biases: false,
        gated: *gated,
        oai: false,
        weight_before: false,
        probs_in: None,
    })
}

/// build_moe_ffn for a routed layer (`gating`, renormalised weights when `norm_w`), else the
/// dense SwiGLU block (build_ffn, LLM_FFN_SILU, LLM_FFN_PAR).
fn moe_or_dense(c: &mut Ctx, il: u64, normed: Id, gating: Gating, norm_w: bool) -> Id {
    match moe_opts(c, il, gating, norm_w) {
        Some(o) => c.moe(normed, o),
        None => {
            let w = c.dense_width(il);
            c.ffn(normed, FfnKind::Parallel, w, false)
        }
    }
}

/// The shared expert's width of a routed layer (0 without one).
fn shared_width(c: &Ctx, il: u64) -> u64 {
    match &c.layer(il).ffn {
        Ffn::Moe { moe, .. } if moe.shared_experts > 0 => {
            moe.shared_expert_intermediate_size * moe.shared_experts
        }
        _ => 0,
    }
}

/// The final norm and the head: result_norm and result_output are the graph's outputs.
fn head(c: &mut Ctx, x: Id, rms: bool, bias: bool) -> (Id, Id) {
    let norm = c.norm(x, rms, true, bias);
    let logits = c.mm(norm, c.m.vocab_size);
    (norm, logits)
}

/// llama.cpp / qwen2.cpp / qwen3.cpp / qwen3moe.cpp (Mixtral and Qwen3-MoE: build_moe_ffn
/// with softmax gating and renormalised weights).
fn llama(c: &mut Ctx, qkv_bias: bool, qk_norm: bool) {
    let mut x = c.inp_embd();
    let pos = c.inp_pos();
    let inp = c.attn_inp(false);
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let a = att(c, il);
        let mut residual = x;
        let cur = c.rms(x);
        let (mut q, mut k, v) = c.qkv(cur, &a, qkv_bias);
        if qk_norm {
            q = c.rms(q);
        }
        q = c.rope(q, pos);
        if qk_norm {
            k = c.rms(k);
        }
        k = c.rope(k, pos);
        let mut cur = c.attn(
            &inp,
            il,
            q,
            k,
            v,
            AttnOpts {
                wo_rows: c.m.hidden_size,
                ..AttnOpts::default()
            },
        );
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            residual = c.out_rows(residual, out_ids);
        }
        let ffn_inp = c.binary(Op::Add, cur, residual);
        let normed = c.rms(ffn_inp);
        let out = moe_or_dense(c, il, normed, Gating::Softmax, true);
        x = c.binary(Op::Add, out, ffn_inp);
    }
    let (norm, logits) = head(c, x, true, false);
    c.finish(norm, logits);
}

/// gemma.cpp, gemma2.cpp, gemma3.cpp: scaled embeddings, Q scaled after RoPE, GeGLU; Gemma 2
/// and 3 add post-attention and post-FFN norms; Gemma 2 soft-caps attention and logits,
/// Gemma 3 normalises Q and K.
fn gemma(c: &mut Ctx, b: Builder) {
    let post_norms = b != Builder::Gemma;
    let mut x = c.inp_embd();
    x = c.unary(Op::Scale, x);
    let pos = c.inp_pos();
    let inp = c.attn_inp(b != Builder::Gemma && iswa(c));
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let a = att(c, il);
        let cur = c.rms(x);
        let (mut q, mut k, v) = c.qkv(cur, &a, false);
        if b == Builder::Gemma3 {
            q = c.rms(q);
        }
        q = c.rope(q, pos);
        if b == Builder::Gemma3 {
            k = c.rms(k);
        }
        k = c.rope(k, pos);
        q = c.unary(Op::Scale, q);
        let mut cur = c.attn(
            &inp,
            il,
            q,
            k,
            v,
            AttnOpts {
                wo_rows: c.m.hidden_size,
                softcap: b == Builder::Gemma2,
                ..AttnOpts::default()
            },
        );
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            x = c.out_rows(x, out_ids);
        }
        if post_norms {
            cur = c.rms(cur);
        }
        let sa_out = c.binary(Op::Add, cur, x);
        let normed = c.rms(sa_out);
        let w = c.dense_width(il);
        let mut out = c.ffn(normed, FfnKind::Parallel, w, false);
        if post_norms {
            out = c.rms(out);
        }
        x = c.binary(Op::Add, out, sa_out);
    }
    let (norm, mut logits) = head(c, x, true, false);
    if b == Builder::Gemma2 {
        logits = c.unary(Op::Scale, logits);
        logits = c.unary(Op::Unary, logits);
        logits = c.unary(Op::Scale, logits);
    }
    c.finish(norm, logits);
}

/// phi3.cpp: fused QKV views, Q scaled after RoPE, fused gate+up split by SwiGLU.
fn phi3(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let pos = c.inp_pos();
    let inp = c.attn_inp(false);
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let a = att(c, il);
        let mut residual = x;
        let normed = c.rms(x);
        let (q, k, v) = c.qkv_fused(normed, &a, false);
        let q = c.rope(q, pos);
        let k = c.rope(k, pos);
        let q = c.unary(Op::Scale, q);
        let mut cur = c.attn(
            &inp,
            il,
            q,
            k,
            v,
            AttnOpts {
                wo_rows: c.m.hidden_size,
                ..AttnOpts::default()
            },
        );
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            residual = c.out_rows(residual, out_ids);
        }
        let cur = c.binary(Op::Add, cur, residual);
        let residual = cur;
        let normed = c.rms(cur);
        let w = c.dense_width(il);
        let out = c.ffn(normed, FfnKind::FusedGlu, w, false);
        x = c.binary(Op::Add, residual, out);
    }
    let (norm, logits) = head(c, x, true, false);
    c.finish(norm, logits);
}

/// falcon.cpp (Falcon-7B: one LayerNorm feeds attention and the MLP in parallel).
fn falcon(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let pos = c.inp_pos();
    let inp = c.attn_inp(false);
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let a = att(c, il);
        let mut attn_norm = c.norm(x, false, true, true);
        let (q, k, v) = c.qkv_fused(attn_norm, &a, a.qkv_bias);
        let q = c.rope(q, pos);
        let k = c.rope(k, pos);
        let mut cur = c.attn(
            &inp,
            il,
            q,
            k,
            v,
            AttnOpts {
                wo_rows: c.m.hidden_size,
                ..AttnOpts::default()
            },
        );
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            x = c.out_rows(x, out_ids);
            attn_norm = c.out_rows(attn_norm, out_ids);
        }
        let w = c.dense_width(il);
        let ffn = c.ffn(attn_norm, FfnKind::Sequential, w, false);
        let sum = c.binary(Op::Add, ffn, cur);
        x = c.binary(Op::Add, sum, x);
    }
    let (norm, logits) = head(c, x, false, true);
    c.finish(norm, logits);
}

/// starcoder2.cpp: LayerNorms with biases, biased Q/K/V/O and MLP, GELU.
fn starcoder2(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let pos = c.inp_pos();
    let inp = c.attn_inp(false);
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let a = att(c, il);
        let mut residual = x;
        let normed = c.norm(x, false, true, true);
        let (q, k, v) = c.qkv(normed, &a, a.qkv_bias);
        let q = c.rope(q, pos);
        let k = c.rope(k, pos);
        let mut cur = c.attn(
            &inp,
            il,
            q,
            k,
            v,
            AttnOpts {
                wo_rows: c.m.hidden_size,
                wo_bias: a.o_bias,
                ..AttnOpts::default()
            },
        );
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            residual = c.out_rows(residual, out_ids);
        }
        let ffn_inp = c.binary(Op::Add, cur, residual);
        let normed = c.norm(ffn_inp, false, true, true);
        let (w, bias) = match c.layer(il).ffn {
            Ffn::Dense { width, bias, .. } => (width, bias),
            _ => (0, false),
        };
        let out = c.ffn(normed, FfnKind::Sequential, w, bias);
        x = c.binary(Op::Add, out, ffn_inp);
    }
    let (norm, logits) = head(c, x, false, true);
    c.finish(norm, logits);
}

/// llama4.cpp: NoPE layers (every fourth) scale Q by the temperature input instead of RoPE;
/// RoPE layers RMS-normalise Q and K; routed experts (sigmoid, weights applied before the
/// experts) beside a shared expert.
fn llama4(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let pos = c.inp_pos();
    let attn_scale = c.g.input(Dtype::F32, [1, 1, c.t, 1]);
    // use_kq_norm = type != LLM_TYPE_17B_128E (128 experts: Maverick).
    let experts = c.m.moe.as_ref().map_or(0, |m| m.num_experts);
    let kq_norm = experts != 128;
    // n_no_rope_layer_step: 4 with chunked attention (the global layers are NoPE), n_layer
    // when the file turns chunking off (sliding_window = 0: the last layer only).
    let chunked =
        c.m.layers()
            .any(|l| l.attention.as_ref().is_some_and(|a| a.span != Span::Full));
    let no_rope_step = if chunked { 4 } else { c.m.num_layers };
    let inp = c.attn_inp(iswa(c));
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let a = att(c, il);
        let mut residual = x;
        let use_rope = no_rope_step > 0 && (il + 1) % no_rope_step != 0;
        let normed = c.rms(x);
        let (mut q, mut k, v) = c.qkv(normed, &a, false);
        if use_rope {
            q = c.rope(q, pos);
            k = c.rope(k, pos);
        } else {
            q = c.binary(Op::Mul, q, attn_scale);
        }
        if use_rope && kq_norm {
            q = c.unary(Op::RmsNorm, q);
            k = c.unary(Op::RmsNorm, k);
        }
        let mut cur = c.attn(
            &inp,
            il,
            q,
            k,
            v,
            AttnOpts {
                wo_rows: c.m.hidden_size,
                ..AttnOpts::default()
            },
        );
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            residual = c.out_rows(residual, out_ids);
        }
        let ffn_inp = c.binary(Op::Add, cur, residual);
        let normed = c.rms(ffn_inp);
        let out = match moe_opts(c, il, Gating::Sigmoid, false) {
            Some(mut o) => {
                o.weight_before = true;
                let shared = shared_width(c, il);
                let moe = c.moe(normed, o);
                let sh = c.ffn(normed, FfnKind::Parallel, shared, false);
                c.binary(Op::Add, moe, sh)
            }
            None => {
                let w = c.dense_width(il);
                c.ffn(normed, FfnKind::Parallel, w, false)
            }
        };
        x = c.binary(Op::Add, out, ffn_inp);
    }
    let (norm, logits) = head(c, x, true, false);
    c.finish(norm, logits);
}

/// openai-moe.cpp (gpt-oss): biased Q/K/V/O, sinks, the output rows taken after the last
/// layer, biased experts with SwiGLU-OAI and softmax over the chosen experts' logits.
fn gpt_oss(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let pos = c.inp_pos();
    let inp = c.attn_inp(iswa(c));
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let a = att(c, il);
        let residual = x;
        let normed = c.rms(x);
        let (q, k, v) = c.qkv(normed, &a, a.qkv_bias);
        let q = c.rope(q, pos);
        let k = c.rope(k, pos);
        let cur = c.attn(
            &inp,
            il,
            q,
            k,
            v,
            AttnOpts {
                wo_rows: c.m.hidden_size,
                wo_bias: a.o_bias,
                sinks: a.sinks,
                ..AttnOpts::default()
            },
        );
        let ffn_inp = c.binary(Op::Add, cur, residual);
        let normed = c.rms(ffn_inp);
        let out = match moe_opts(c, il, Gating::SoftmaxWeight, false) {
            Some(mut o) => {
                o.biases = true;
                o.oai = true;
                c.moe(normed, o)
            }
            None => {
                let w = c.dense_width(il);
                c.ffn(normed, FfnKind::Parallel, w, false)
            }
        };
        x = c.binary(Op::Add, out, ffn_inp);
    }
    // res->t_h_nextn (the last layer's output, kept for a multi-token-prediction head) is an
    // output too.
    c.g.set_output(x);
    let x = c.out_rows(x, out_ids);
    let (norm, logits) = head(c, x, true, false);
    c.finish(norm, logits);
}

/// deepseek2.cpp with MLA: Q through its LoRA (or one matrix), the latent and rope key from
/// one product, Q's nope part absorbed into the latent space, K = [latent, rope key] cached,
/// V a view of it, the attention output decompressed by wv_b; dense leading layers, routed
/// experts (softmax or sigmoid with the selection bias) beside shared experts.
fn deepseek2(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let pos = c.inp_pos();
    let inp = c.attn_inp_k();
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    let t = c.t;
    for il in 0..n {
        let a = att(c, il);
        let latent = a.latent.expect("MLA");
        let (heads, rope) = (a.heads, a.rotary_dim);
        let nope = a.k_head_dim.saturating_sub(rope);
        let mut residual = x;
        let normed = c.rms(x);
        let q = if latent.q_lora_rank > 0 {
            let qa = c.mm(normed, latent.q_lora_rank);
            let qa = c.rms(qa);
            c.mm(qa, heads * a.k_head_dim)
        } else {
            c.mm(normed, heads * a.k_head_dim)
        };
        let q = c.reshape(q, [a.k_head_dim, heads, t, 1]);
        let kv_cmpr_pe = c.mm(normed, latent.kv_lora_rank + rope);
        let kv_cmpr = c.strided(kv_cmpr_pe, [latent.kv_lora_rank, t, 1, 1]);
        let k_pe = c.strided(kv_cmpr_pe, [rope, 1, t, 1]);
        let k_pe = c.rope(k_pe, pos);
        let kv_cmpr = c.rms(kv_cmpr);
        let q_nope = c.strided(q, [nope, heads, t, 1]);
        let q_pe = c.strided(q, [rope, heads, t, 1]);
        let q_pe = c.rope(q_pe, pos);
        let q_nope = c.permute_0213(q_nope);
        let absorbed = c.mm(q_nope, latent.kv_lora_rank);
        let absorbed = c.permute_0213(absorbed);
        let qcur = c.concat0(absorbed, q_pe);
        let kv3 = c.reshape(kv_cmpr, [latent.kv_lora_rank, 1, t, 1]);
        let kcur = c.concat0(kv3, k_pe);
        let mut cur = c.attn(
            &inp,
            il,
            qcur,
            kcur,
            kv3,
            AttnOpts {
                wo_rows: c.m.hidden_size,
                v_mla_rows: a.v_head_dim,
                ..AttnOpts::default()
            },
        );
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            residual = c.out_rows(residual, out_ids);
        }
        let ffn_inp = c.binary(Op::Add, cur, residual);
        let normed = c.rms(ffn_inp);
        let out = match moe_opts(c, il, Gating::Softmax, false) {
            Some(mut o) => {
                let (gating, bias, norm_w, scale) = deepseek_routing(c);
                o.gating = gating;
                o.probs_bias = bias;
                o.norm_w = norm_w;
                o.scale_w = scale;
                let shared = shared_width(c, il);
                let moe = c.moe(normed, o);
                let sh = c.ffn(normed, FfnKind::Parallel, shared, false);
                c.binary(Op::Add, moe, sh)
            }
            None => {
                let w = c.dense_width(il);
                c.ffn(normed, FfnKind::Parallel, w, false)
            }
        };
        x = c.binary(Op::Add, out, ffn_inp);
    }
    let norm = c.rms(x);
    let logits = c.mm(norm, c.m.vocab_size);
    c.finish(norm, logits);
}

/// DeepSeek's routing in llama.cpp: build_moe_ffn with the file's expert_gating_func
/// (softmax for V2, sigmoid for V3: the same shapes), the selection bias `ffn_exp_probs_b`
/// when the file has it (V3's e_score_correction_bias), expert_weights_norm and
/// expert_weights_scale (V3: renormalised, scaled by 2.5). The description is V3's; a GGUF
/// file's own tensor list decides the bias.
fn deepseek_routing(c: &Ctx) -> (Gating, bool, bool, bool) {
    let bias = match &c.m.measured {
        Some(m) if !m.tensors.is_empty() => {
            m.tensors.iter().any(|t| t.name.contains("exp_probs_b"))
        }
        _ => true,
    };
    (Gating::Sigmoid, bias, true, true)
}

// ---- recurrent layers ------------------------------------------------------------------

/// A Mamba or Mamba-2 mixer's sizes, from the description's state shapes (conv [channels,
/// d_conv], state [d_inner, d_state] or [heads, head_dim, d_state]) and, for Mamba-1, dt_rank
/// from dt_proj [d_inner, dt_rank].
#[derive(Debug, Clone, Copy)]
pub(super) struct SsmDims {
    d_conv: u64,
    d_inner: u64,
    d_state: u64,
    n_head: u64,
    head_dim: u64,
    n_group: u64,
    dt_rank: u64,
    mamba2: bool,
}

pub(super) fn ssm_dims(model: &ModelDesc, l: &crate::layer::Layer) -> Option<SsmDims> {
    let r = l.recurrent.as_ref()?;
    let conv = r.states.iter().find(|s| s.name == "conv")?;
    let state = r.states.iter().find(|s| s.name != "conv")?;
    let (channels, d_conv) = (*conv.shape.first()?, *conv.shape.get(1)?);
    match r.kind {
        RecurrentKind::Mamba => {
            let (d_inner, d_state) = (*state.shape.first()?, *state.shape.get(1)?);
            let h = model.hidden_size;
            let dt_rank = l
                .tensors
                .iter()
                .find(|t| t.role == Role::Ssm && t.rows == d_inner && t.cols != h)?
                .cols;
            Some(SsmDims {
                d_conv,
                d_inner,
                d_state,
                n_head: d_inner,
                head_dim: 1,
                n_group: 0,
                dt_rank,
                mamba2: false,
            })
        }
        RecurrentKind::Mamba2 => {
            let (n_head, head_dim, d_state) = (
                *state.shape.first()?,
                *state.shape.get(1)?,
                *state.shape.get(2)?,
            );
            let d_inner = n_head * head_dim;
            let n_group = channels.checked_sub(d_inner)? / (2 * d_state).max(1);
            Some(SsmDims {
                d_conv,
                d_inner,
                d_state,
                n_head,
                head_dim,
                n_group,
                dt_rank: n_head,
                mamba2: true,
            })
        }
        _ => None,
    }
    .filter(|d| d.d_conv > 1 && d.d_inner > 0 && d.d_state > 0)
}

/// llama-graph.cpp `build_rs`: the state rows of the ubatch's sequences (through
/// `get_rows`, or the caller's op), a cleared row, and the other rows copied back.
/// `s` is the layer's cache tensor [state_size, rs_size].
fn build_rs(
    c: &mut Ctx,
    rs: RsInp,
    s: Id,
    state_size: u64,
    get_rows: impl FnOnce(&mut Ctx, Id, Id) -> Id,
) -> Id {
    let rs_size = c.s.rs_size.max(1);
    let states = c.reshape(s, [state_size, rs_size, 1, 1]);
    let zero = c.reshape(states, [state_size, 1, 1, 1]);
    let cleared = c.g.op_into(Op::Scale, &[zero], zero, [state_size, 1, 1, 1]);
    c.expand(cleared);
    let out = get_rows(c, states, rs.copy_main);
    c.expand(out);
    let extra = c.get_rows(states, rs.copy_extra);
    let extra_n = rs_size.saturating_sub(c.seqs);
    let dst = c.reshape(s, [state_size, extra_n, 1, 1]);
    let cpy =
        c.g.op_into(Op::Cpy, &[extra, dst], dst, [state_size, extra_n, 1, 1]);
    c.expand(cpy);
    out
}

/// mamba-base.cpp `build_mamba_layer` (Mamba-1; `dt_b_c_rms`: Jamba's and Falcon-Mamba's RMS
/// norms of dt, B and C).
fn mamba_layer(c: &mut Ctx, rs: RsInp, x: Id, d: SsmDims, dt_b_c_rms: bool) -> Id {
    let (st, ns) = (c.seq_tokens, c.seqs);
    let rs_size = c.s.rs_size.max(1);
    let n_embd_r = (d.d_conv - 1) * d.d_inner;
    let n_embd_s = d.d_state * d.d_inner;
    let conv_all = c.g.external(Dtype::F32, [n_embd_r, rs_size, 1, 1]);
    let ssm_all = c.g.external(Dtype::F32, [n_embd_s, rs_size, 1, 1]);
    let conv = build_rs(c, rs, conv_all, n_embd_r, |c, s, ids| c.get_rows(s, ids));
    let conv = c.reshape(conv, [d.d_conv - 1, d.d_inner, ns, 1]);
    let e = c.ne(x)[0];
    let cur = c.reshape(x, [e, st, ns, 1]);
    let xz = c.mm(cur, 2 * d.d_inner);
    let xs = c.strided(xz, [d.d_inner, st, ns, 1]);
    let z = c.strided(xz, [d.d_inner, st, ns, 1]);
    let xt = c.transpose(xs);
    let conv_x = c.concat0(conv, xt);
    let last = c.strided(conv_x, [d.d_conv - 1, d.d_inner, ns, 1]);
    store_rows(c, last, conv_all, n_embd_r * ns, 1);
    let cw = c.weight();
    let xc = c.g.op(Op::SsmConv, &[conv_x, cw], [d.d_inner, st, ns, 1]);
    let xc = c.with_weight(Op::Add, xc);
    let xs = c.unary(Op::Unary, xc);
    let x_db = c.mm(xs, d.dt_rank + 2 * d.d_state);
    let dt = c.strided(x_db, [d.dt_rank, st, ns, 1]);
    let bm = c.strided(x_db, [d.d_state, 1, st, ns]);
    let cm = c.strided(x_db, [d.d_state, 1, st, ns]);
    let (dt, bm, cm) = if dt_b_c_rms {
        (c.rms(dt), c.rms(bm), c.rms(cm))
    } else {
        let dne = c.ne(dt);
        (c.cont(dt, dne), bm, cm)
    };
    let dt = c.mm(dt, d.d_inner);
    let dt = c.with_weight(Op::Add, dt);
    let x4 = c.reshape(xs, [1, d.d_inner, st, ns]);
    let ssm_ne = numel(c.ne(x4)) + d.d_state * d.d_inner * ns;
    let y_ssm = build_rs(c, rs, ssm_all, n_embd_s, |c, states, ids| {
        let ssm = c.reshape(states, [d.d_state, 1, d.d_inner, rs_size]);
        let a = c.weight();
        c.g.op(
            Op::SsmScan,
            &[ssm, x4, dt, a, bm, cm, ids],
            [ssm_ne, 1, 1, 1],
        )
    });
    let y_states = c.strided(y_ssm, [d.d_state * d.d_inner * ns, 1, 1, 1]);
    store_rows(c, y_states, ssm_all, n_embd_s * ns, 1);
    let y = c.strided(y_ssm, [d.d_inner, st, ns, 1]);
    let xd = c.with_weight(Op::Mul, xs);
    let y = c.binary(Op::Add, y, xd);
    let zne = c.ne(z);
    let zc = c.cont(z, zne);
    let y = c.g.like(Op::Glu, zc, &[y]);
    let out = c.mm(y, e);
    c.reshape(out, [e, st * ns, 1, 1])
}

/// mamba-base.cpp `build_mamba2_layer` (one state slot: n_rs_seq = 0).
fn mamba2_layer(c: &mut Ctx, rs: RsInp, x: Id, d: SsmDims) -> Id {
    let (st, ns) = (c.seq_tokens, c.seqs);
    let rs_size = c.s.rs_size.max(1);
    let channels = d.d_inner + 2 * d.n_group * d.d_state;
    let n_embd_r = (d.d_conv - 1) * channels;
    let n_embd_s = d.d_state * d.d_inner;
    let conv_all = c.g.external(Dtype::F32, [n_embd_r, rs_size, 1, 1]);
    let ssm_all = c.g.external(Dtype::F32, [n_embd_s, rs_size, 1, 1]);
    let conv = build_rs(c, rs, conv_all, n_embd_r, |c, s, ids| c.get_rows(s, ids));
    let conv = c.reshape(conv, [d.d_conv - 1, channels, ns, 1]);
    let e = c.ne(x)[0];
    let zxbcdt = c.mm(x, 2 * d.d_inner + 2 * d.n_group * d.d_state + d.n_head);
    let zxbcdt = c.reshape(zxbcdt, [c.ne(zxbcdt)[0], st, ns, 1]);
    let z = c.strided(zxbcdt, [d.head_dim, d.n_head, st, ns]);
    let xbc = c.strided(zxbcdt, [channels, st, ns, 1]);
    let dt = c.strided(zxbcdt, [d.n_head, st, ns, 1]);
    let xt = c.transpose(xbc);
    let conv_x = c.concat0(conv, xt);
    let last = c.strided(conv_x, [d.d_conv - 1, channels, ns, 1]);
    store_rows(c, last, conv_all, n_embd_r, ns);
    let cw = c.weight();
    let xc = c.g.op(Op::SsmConv, &[conv_x, cw], [channels, st, ns, 1]);
    let xc = c.with_weight(Op::Add, xc);
    let xbc = c.unary(Op::Unary, xc);
    let xh = c.strided(xbc, [d.head_dim, d.n_head, st, ns]);
    let bm = c.strided(xbc, [d.d_state, d.n_group, st, ns]);
    let cm = c.strided(xbc, [d.d_state, d.n_group, st, ns]);
    let dne = c.ne(dt);
    let dtc = c.cont(dt, dne);
    let dt = c.with_weight(Op::Add, dtc);
    let ssm_ne = numel(c.ne(xh)) + d.d_state * d.head_dim * d.n_head * ns;
    let y_ssm = build_rs(c, rs, ssm_all, n_embd_s, |c, states, ids| {
        let ssm = c.reshape(states, [d.d_state, d.head_dim, d.n_head, rs_size]);
        let a = c.weight();
        c.g.op(
            Op::SsmScan,
            &[ssm, xh, dt, a, bm, cm, ids],
            [ssm_ne, 1, 1, 1],
        )
    });
    let y_states = c.strided(y_ssm, [n_embd_s, ns, 1, 1]);
    store_rows(c, y_states, ssm_all, n_embd_s, ns);
    let y = c.strided(y_ssm, [d.head_dim, d.n_head, st, ns]);
    let xd = c.with_weight(Op::Mul, xh);
    let y = c.binary(Op::Add, y, xd);
    let zne = c.ne(z);
    let zc = c.cont(z, zne);
    let y = c.g.like(Op::Glu, zc, &[y]);
    let y = c.reshape(y, [d.d_inner / d.n_group.max(1), d.n_group.max(1), st, ns]);
    let y = c.rms(y);
    let y = c.reshape(y, [d.d_inner, st * ns, 1, 1]);
    c.mm(y, e)
}

/// ggml_cpy of `src` into a [row, n] view of `cache` (Mamba-2's and LFM2's write-backs).
fn store_rows(c: &mut Ctx, src: Id, cache: Id, row: u64, n: u64) {
    let dst = c.reshape(cache, [row, n, 1, 1]);
    let ne = c.ne(dst);
    let cpy = c.g.op_into(Op::Cpy, &[src, dst], dst, ne);
    c.expand(cpy);
}

fn numel(ne: [u64; 4]) -> u64 {
    super::numel(ne)
}

/// mamba.cpp (Mamba and Mamba-2 models): norm, mixer, residual.
fn mamba(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let rs = c.rs_inp();
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let d = ssm_dims(c.m, c.layer(il)).expect("checked by builder_for");
        let normed = c.rms(x);
        let mut cur = if d.mamba2 {
            mamba2_layer(c, rs, normed, d)
        } else {
            mamba_layer(c, rs, normed, d, false)
        };
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            x = c.out_rows(x, out_ids);
        }
        x = c.binary(Op::Add, cur, x);
    }
    let (norm, logits) = head(c, x, true, false);
    c.finish(norm, logits);
}

/// build_inp_mem_hybrid: the recurrent input, then the attention input.
fn hybrid_inp(c: &mut Ctx) -> (RsInp, AttnInp) {
    let rs = c.rs_inp();
    let attn = c.attn_inp(false);
    (rs, attn)
}

/// granite-hybrid.cpp: Mamba-2 or attention (RoPE when the layer has it), then an MLP or
/// routed experts (softmax, renormalised) with an optional shared expert. Granite's
/// embedding, residual and logit multipliers are in-place scales not modelled here (the
/// GGUF keys are not in the description; they hold no memory of their own).
fn granite_hybrid(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let (rs, inp) = hybrid_inp(c);
    let out_ids = c.inp_out_ids();
    let rope =
        c.m.layers()
            .any(|l| l.attention.as_ref().is_some_and(|a| a.rotary_dim > 0));
    let pos = rope.then(|| c.inp_pos());
    let n = c.m.num_layers;
    for il in 0..n {
        let mut residual = x;
        let normed = c.rms(x);
        let mut cur = match ssm_dims(c.m, c.layer(il)) {
            Some(d) => mamba2_layer(c, rs, normed, d),
            None => {
                let a = att(c, il);
                let (mut q, mut k, v) = c.qkv(normed, &a, a.qkv_bias);
                if let (Some(p), true) = (pos, a.rotary_dim > 0) {
                    q = c.rope(q, p);
                    k = c.rope(k, p);
                }
                c.attn(
                    &inp,
                    il,
                    q,
                    k,
                    v,
                    AttnOpts {
                        wo_rows: c.m.hidden_size,
                        wo_bias: a.o_bias,
                        ..AttnOpts::default()
                    },
                )
            }
        };
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            residual = c.out_rows(residual, out_ids);
        }
        let ffn_inp = c.binary(Op::Add, cur, residual);
        let normed = c.rms(ffn_inp);
        let out = match moe_opts(c, il, Gating::Softmax, true) {
            Some(o) => {
                let shared = shared_width(c, il);
                let moe = c.moe(normed, o);
                if shared > 0 {
                    let sh = c.ffn(normed, FfnKind::Parallel, shared, false);
                    c.binary(Op::Add, moe, sh)
                } else {
                    moe
                }
            }
            None => {
                let w = c.dense_width(il);
                c.ffn(normed, FfnKind::Parallel, w, false)
            }
        };
        x = c.binary(Op::Add, out, ffn_inp);
    }
    let (norm, logits) = head(c, x, true, false);
    c.finish(norm, logits);
}

/// nemotron-h.cpp: each layer one mixer — Mamba-2, attention (no RoPE) or a ReLU² MLP — and
/// a residual; the output rows are taken after the final norm.
fn nemotron_h(c: &mut Ctx) {
    let mut x = c.inp_embd();
    c.expand(x);
    let (rs, inp) = hybrid_inp(c);
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let residual = x;
        let normed = c.rms(x);
        let cur = if let Some(d) = ssm_dims(c.m, c.layer(il)) {
            mamba2_layer(c, rs, normed, d)
        } else if c.layer(il).attention.is_some() {
            let a = att(c, il);
            let (q, k, v) = c.qkv(normed, &a, a.qkv_bias);
            c.attn(
                &inp,
                il,
                q,
                k,
                v,
                AttnOpts {
                    wo_rows: c.m.hidden_size,
                    wo_bias: a.o_bias,
                    ..AttnOpts::default()
                },
            )
        } else {
            let w = c.dense_width(il);
            c.ffn(normed, FfnKind::ReluSqr, w, false)
        };
        x = c.binary(Op::Add, cur, residual);
    }
    let norm = c.rms(x);
    // res->t_h_nextn: the normed states before the output rows are taken, an output too.
    c.g.set_output(norm);
    let rows = c.out_rows(norm, out_ids);
    let logits = c.mm(rows, c.m.vocab_size);
    c.finish(rows, logits);
}

/// jamba.cpp: Mamba (with dt/B/C norms) or attention, then a gated MLP or routed experts
/// (softmax, not renormalised).
fn jamba(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let (rs, inp) = hybrid_inp(c);
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let normed = c.rms(x);
        let mut cur = match ssm_dims(c.m, c.layer(il)) {
            Some(d) => mamba_layer(c, rs, normed, d, true),
            None => {
                let a = att(c, il);
                let (q, k, v) = c.qkv(normed, &a, false);
                c.attn(
                    &inp,
                    il,
                    q,
                    k,
                    v,
                    AttnOpts {
                        wo_rows: c.m.hidden_size,
                        ..AttnOpts::default()
                    },
                )
            }
        };
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            x = c.out_rows(x, out_ids);
        }
        let ffn_inp = c.binary(Op::Add, x, cur);
        let normed = c.rms(ffn_inp);
        let out = moe_or_dense(c, il, normed, Gating::Softmax, false);
        x = c.binary(Op::Add, ffn_inp, out);
    }
    let (norm, logits) = head(c, x, true, false);
    c.finish(norm, logits);
}

/// lfm2.cpp: gated short convolutions (B·x through a causal conv, times C) or attention with
/// QK norms, each followed by a SwiGLU MLP.
fn lfm2(c: &mut Ctx) {
    let mut x = c.inp_embd();
    c.expand(x);
    let (rs, inp) = hybrid_inp(c);
    let pos = c.inp_pos();
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    let e = c.m.hidden_size;
    let (st, ns) = (c.seq_tokens, c.seqs);
    let rs_size = c.s.rs_size.max(1);
    for il in 0..n {
        let mut prev = x;
        let normed = c.rms(x);
        let layer = c.layer(il);
        let mut cur = if let Some(r) = &layer.recurrent {
            let l_cache = r
                .states
                .iter()
                .find(|s| s.name == "conv")
                .and_then(|s| s.shape.get(1).copied())
                .unwrap_or(3);
            let d_conv = l_cache - 1;
            let cur = c.reshape(normed, [e, st, ns, 1]);
            let bcx = c.mm(cur, 3 * e);
            let bm = c.strided(bcx, [e, st, ns, 1]);
            let cm = c.strided(bcx, [e, st, ns, 1]);
            let xm = c.strided(bcx, [e, st, ns, 1]);
            let bx = c.binary(Op::Mul, bm, xm);
            let bx = c.transpose(bx);
            let conv_state = c.g.external(Dtype::F32, [d_conv * e, rs_size, 1, 1]);
            let conv_rs = build_rs(c, rs, conv_state, d_conv * e, |c, s, ids| {
                c.get_rows(s, ids)
            });
            let conv = c.reshape(conv_rs, [d_conv, e, ns, 1]);
            let bx = c.concat0(conv, bx);
            let snap = c.strided(bx, [d_conv, e, ns, 1]);
            store_rows(c, snap, conv_state, d_conv * e, ns);
            let kernel = c.weight();
            let conv_out = c.g.op(Op::SsmConv, &[bx, kernel], [e, st, ns, 1]);
            let y = c.binary(Op::Mul, cm, conv_out);
            let y = c.mm(y, e);
            c.reshape(y, [e, st * ns, 1, 1])
        } else {
            let a = att(c, il);
            let (q, k, v) = c.qkv(normed, &a, false);
            let q = c.rms(q);
            let k = c.rms(k);
            let q = c.rope(q, pos);
            let k = c.rope(k, pos);
            c.attn(
                &inp,
                il,
                q,
                k,
                v,
                AttnOpts {
                    wo_rows: e,
                    ..AttnOpts::default()
                },
            )
        };
        if il + 1 == n {
            cur = c.out_rows(cur, out_ids);
            prev = c.out_rows(prev, out_ids);
        }
        let cur = c.binary(Op::Add, prev, cur);
        let normed = c.rms(cur);
        let w = c.dense_width(il);
        let out = c.ffn(normed, FfnKind::Parallel, w, false);
        x = c.binary(Op::Add, cur, out);
    }
    let (norm, logits) = head(c, x, true, false);
    c.finish(norm, logits);
}

/// A Gated DeltaNet mixer's sizes as llama.cpp reads them (qwen3next.cpp: head_k_dim =
/// ssm_d_state, n_k_heads = ssm_n_group, n_v_heads = ssm_dt_rank, head_v_dim = d_inner /
/// n_v_heads), from the description's states: conv [2·n_k·d_k + n_v·d_v, d_conv], recurrent
/// [n_v, d_k, d_v]. llama.cpp's fused op needs d_k == d_v.
#[derive(Debug, Clone, Copy)]
struct GdnDims {
    d_conv: u64,
    k_heads: u64,
    v_heads: u64,
    head: u64,
}

fn gdn_dims(l: &crate::layer::Layer) -> Option<GdnDims> {
    let r = l.recurrent.as_ref()?;
    let conv = r.states.iter().find(|s| s.name == "conv")?;
    let state = r.states.iter().find(|s| s.name != "conv")?;
    let (channels, d_conv) = (*conv.shape.first()?, *conv.shape.get(1)?);
    let (v_heads, d_k, d_v) = (
        *state.shape.first()?,
        *state.shape.get(1)?,
        *state.shape.get(2)?,
    );
    if d_k != d_v || d_k == 0 || v_heads == 0 || d_conv < 2 {
        return None;
    }
    let k_heads = channels.checked_sub(v_heads * d_v)? / (2 * d_k);
    (k_heads > 0
        && v_heads.is_multiple_of(k_heads)
        && 2 * k_heads * d_k + v_heads * d_v == channels)
        .then_some(GdnDims {
            d_conv,
            k_heads,
            v_heads,
            head: d_k,
        })
}

/// qwen3next.cpp `build_layer_attn_linear` with delta-net-base.cpp's `build_conv_state` and
/// `build_recurrent_attn` (n_rs_seq = 0) over the fused GATED_DELTA_NET op, which the CPU and
/// CUDA backends take (`fused_gdn_ch`, llama-context.cpp): fused q/k/v projection through
/// the causal conv, L2-normed Q and K repeated to the value heads, the new state written back,
/// the output RMS-normed and gated by SiLU(z).
fn gdn_layer(c: &mut Ctx, rs: RsInp, x: Id, d: GdnDims) -> Id {
    let (st, ns) = (c.seq_tokens, c.seqs);
    let rs_size = c.s.rs_size.max(1);
    let e = c.m.hidden_size;
    let (hk, hv) = (d.head, d.head);
    let (key_dim, value_dim) = (hk * d.k_heads, hv * d.v_heads);
    let channels = 2 * key_dim + value_dim;
    let n_embd_r = (d.d_conv - 1) * channels;
    let n_embd_s = hv * hv * d.v_heads;
    let conv_all = c.g.external(Dtype::F32, [n_embd_r, rs_size, 1, 1]);
    let ssm_all = c.g.external(Dtype::F32, [n_embd_s, rs_size, 1, 1]);
    // build_qkvz (the fused attn_qkv and attn_gate path), mixed_ba, beta and the gate.
    let qkv = c.mm(x, channels);
    let qkv = c.reshape(qkv, [channels, st, ns, 1]);
    let z = c.mm(x, value_dim);
    let ba = c.mm(x, 2 * d.v_heads);
    let per = d.v_heads / d.k_heads;
    let ba = c.reshape(ba, [2 * per, d.k_heads, st, ns]);
    let b = c.strided(ba, [per, d.k_heads, st, ns]);
    let a = c.strided(ba, [per, d.k_heads, st, ns]);
    let b = c.cont(b, [per, d.k_heads, st, ns]);
    let beta = c.g.like(Op::Unary, b, &[]);
    let alpha = c.cont(a, [d.v_heads, st, ns, 1]);
    let alpha = c.with_weight(Op::Add, alpha);
    let alpha = c.unary(Op::Unary, alpha);
    let gate = c.with_weight(Op::Mul, alpha);
    let beta = c.reshape(beta, [1, d.v_heads, st, ns]);
    let gate = c.reshape(gate, [1, d.v_heads, st, ns]);
    // build_conv_state: the cached columns before the new ones, the last d_conv-1 stored.
    let conv = build_rs(c, rs, conv_all, n_embd_r, |c, s, ids| c.get_rows(s, ids));
    let conv = c.reshape(conv, [d.d_conv - 1, channels, ns, 1]);
    let qkv_t = c.transpose(qkv);
    let conv_in = c.concat0(conv, qkv_t);
    let last = c.strided(conv_in, [d.d_conv - 1, channels, ns, 1]);
    store_rows(c, last, conv_all, n_embd_r, ns);
    let state = build_rs(c, rs, ssm_all, n_embd_s, |c, s, ids| c.get_rows(s, ids));
    let state = c.reshape(state, [hv, hv, d.v_heads, ns]);
    let kernel = c.weight();
    let conv_out =
        c.g.op(Op::SsmConv, &[conv_in, kernel], [channels, st, ns, 1]);
    let conv_out = c.unary(Op::Unary, conv_out);
    // build_gdn_l2_norm (rms_norm, scale), then repeat_4d to the value heads.
    let mut qk = [0; 2];
    for slot in &mut qk {
        let v = c.strided(conv_out, [hk, d.k_heads, st, ns]);
        let n = c.unary(Op::RmsNorm, v);
        let mut n = c.unary(Op::Scale, n);
        if d.k_heads != d.v_heads {
            let r = c.reshape(n, [hk, 1, d.k_heads, st * ns]);
            let r = c.g.op(Op::Repeat, &[r], [hk, per, d.k_heads, st * ns]);
            n = c.reshape(r, [hk, d.v_heads, st, ns]);
        }
        *slot = n;
    }
    let v = c.strided(conv_out, [hv, d.v_heads, st, ns]);
    let out = c.g.op(
        Op::GatedDeltaNet,
        &[qk[0], qk[1], v, gate, beta, state],
        [hv * d.v_heads, st * ns + hv * ns, 1, 1],
    );
    let new_state = c.strided(out, [hv, hv, d.v_heads, ns]);
    store_rows(c, new_state, ssm_all, n_embd_s, ns);
    let o = c.strided(out, [hv, d.v_heads, st, ns]);
    // build_norm_gated: RMS norm with ssm_norm, times SiLU(z).
    let o = c.rms(o);
    let z = c.reshape(z, [hv, d.v_heads, st, ns]);
    let z = c.unary(Op::Unary, z);
    let o = c.binary(Op::Mul, o, z);
    let o = c.reshape(o, [value_dim, st, ns, 1]);
    let o = c.mm(o, e);
    c.reshape(o, [e, st * ns, 1, 1])
}

/// qwen3next.cpp: gated delta net or gated attention (Q projected with its gate, QK norms,
/// sigmoid gate before the output projection), a post-attention norm, routed experts
/// (softmax, renormalised) plus a sigmoid-gated shared expert; the output rows are taken
/// after the final norm (res->t_h_nextn is an output).
fn qwen3next(c: &mut Ctx) {
    let mut x = c.inp_embd();
    let (rs, inp) = hybrid_inp(c);
    let pos = c.inp_pos();
    let out_ids = c.inp_out_ids();
    let n = c.m.num_layers;
    for il in 0..n {
        let residual = x;
        let normed = c.rms(x);
        c.expand(normed);
        let cur = if let Some(d) = gdn_dims(c.layer(il)) {
            gdn_layer(c, rs, normed, d)
        } else {
            let a = att(c, il);
            let hd = a.k_head_dim;
            let q_full = c.mm(normed, 2 * hd * a.heads);
            let q_full = c.reshape(q_full, [2 * hd, a.heads, c.t, 1]);
            let q = c.strided(q_full, [hd, a.heads, c.t, 1]);
            let gate = c.strided(q_full, [hd, a.heads, c.t, 1]);
            let k = c.mm(normed, hd * a.kv_heads);
            let v = c.mm(normed, hd * a.kv_heads);
            let k = c.reshape(k, [hd, a.kv_heads, c.t, 1]);
            let v = c.reshape(v, [hd, a.kv_heads, c.t, 1]);
            let q = c.rms(q);
            let k = c.rms(k);
            let q = c.rope(q, pos);
            let k = c.rope(k, pos);
            let o = c.attn(&inp, il, q, k, v, AttnOpts::default());
            let gate = c.cont(gate, [hd * a.heads, c.t, 1, 1]);
            let gate = c.unary(Op::Unary, gate);
            let o = c.binary(Op::Mul, o, gate);
            c.mm(o, c.m.hidden_size)
        };
        let attn_res = c.binary(Op::Add, cur, residual);
        let normed = c.rms(attn_res);
        let o = moe_opts(c, il, Gating::Softmax, true).expect("checked by builder_for");
        let moe = c.moe(normed, o);
        let shared = shared_width(c, il);
        let ffn = if shared > 0 {
            let sh = c.ffn(normed, FfnKind::Parallel, shared, false);
            let g = c.mm(normed, 1);
            let g = c.unary(Op::Unary, g);
            let sh = c.binary(Op::Mul, sh, g);
            c.binary(Op::Add, moe, sh)
        } else {
            moe
        };
        x = c.binary(Op::Add, ffn, attn_res);
    }
    let norm = c.rms(x);
    c.g.set_output(norm);
    let rows = c.out_rows(norm, out_ids);
    let logits = c.mm(rows, c.m.vocab_size);
    c.finish(rows, logits);
}

/// Gemma 3n's AltUp, LAuReL and per-layer-input sizes as llama.cpp fixes them at 0c1e57098:
/// src/llama-hparams.h `n_altup = 4`, `i_altup_act = 0`, `laurel_rank = 64`, `n_embd_altup =
/// 256` (not read from the file), and src/models/models.h `n_layer_sparsity = 10` (the first
/// ten layers apply gaussian_topk to the gate).
const GEMMA3N_ALTUP: u64 = 4;
const GEMMA3N_LAUREL_RANK: u64 = 64;
const GEMMA3N_EMBD_ALTUP: u64 = 256;
const GEMMA3N_SPARSE_LAYERS: u64 = 10;

/// gemma3n_view_2d_slice: slice `i` of the third dimension, [ne0, ne1].
fn slice2d(c: &mut Ctx, x: Id) -> Id {
    let [a, b, _, _] = c.ne(x);
    c.strided(x, [a, b, 1, 1])
}

/// calc_magnitude: sqrt(sum_rows(x²)).
fn magnitude(c: &mut Ctx, x: Id) -> Id {
    let sq = c.unary(Op::Sqr, x);
    let [_, b, cc, d] = c.ne(sq);
    let sum = c.g.op(Op::SumRows, &[sq], [1, b, cc, d]);
    c.unary(Op::Sqrt, sum)
}

/// altup_compute_router_modalities: RMS norm, scale, router, tanh ([n_altup, tokens]).
fn altup_router(c: &mut Ctx, x: Id) -> Id {
    let r = c.rms(x);
    let r = c.unary(Op::Scale, r);
    let r = c.mm(r, GEMMA3N_ALTUP);
    c.unary(Op::Unary, r)
}

/// gemma3n.cpp (at 0c1e57098): per-layer inputs (their own token embeddings plus a projection
/// of the scaled embeddings), four AltUp streams predicted and corrected around each layer,
/// LAuReL beside attention, QK norms and an unweighted V norm, layers past the KV layers
/// reading an earlier layer's cache, gaussian top-k on the first layers' gates, the streams
/// merged back before the head, final logit soft-capping.
fn gemma3n(c: &mut Ctx) {
    let (e, t) = (c.m.hidden_size, c.t);
    let n = c.m.num_layers;
    let (na, ea) = (GEMMA3N_ALTUP, GEMMA3N_EMBD_ALTUP);
    let embd = c.inp_embd();
    let inp_l = c.unary(Op::Scale, embd);
    let pos = c.inp_pos();
    let inp = c.attn_inp(true);
    // build_inp_per_layer: get_rows of per_layer_token_embd, reshaped, scaled; expanded.
    let tokens = c.g.input(Dtype::I32, [t, 1, 1, 1]);
    let table = c.weight();
    let per = c.g.op(Op::GetRows, &[table, tokens], [ea * n, t, 1, 1]);
    let per = c.reshape(per, [ea, n, t, 1]);
    let per = c.unary(Op::Scale, per);
    c.expand(per);
    // project_per_layer_inputs.
    let proj = c.mm(inp_l, ea * n);
    let proj = c.unary(Op::Scale, proj);
    let proj = c.reshape(proj, [ea, n, t, 1]);
    let proj = c.rms(proj);
    let per = c.binary(Op::Add, proj, per);
    let per = c.unary(Op::Scale, per);
    let per = c.strided(per, [ea, t, n, 1]);
    let per_layer = c.cont(per, [ea, t, n, 1]);
    // The other AltUp streams: the embeddings projected, rescaled to their magnitude.
    let target = magnitude(c, inp_l);
    let rep = c.g.op(Op::Repeat, &[inp_l], [e, t, na - 1, 1]);
    let added = c.mm(rep, e);
    let new_mag = magnitude(c, added);
    let added = c.binary(Op::Mul, added, target);
    let added = c.binary(Op::Div, added, new_mag);
    let mut x = c.g.op(Op::Concat, &[inp_l, added], [e, t, na, 1]);
    for il in 0..n {
        // altup_predict.
        let active = slice2d(c, x);
        let modalities = altup_router(c, active);
        let coefs = c.mm(modalities, na * na);
        let coefs = c.reshape(coefs, [na, na, t, 1]);
        let xp = c.strided(x, [na, e, t, 1]);
        let xp = c.cont(xp, [na, e, t, 1]);
        let pred = c.mul_mat(xp, coefs);
        let pred = c.strided(pred, [e, t, na, 1]);
        let pred = c.cont(pred, [e, t, na, 1]);
        let predictions = c.binary(Op::Add, pred, x);
        let active = slice2d(c, predictions);
        let cur = c.rms(active);
        // laurel.
        let lr = c.mm(cur, GEMMA3N_LAUREL_RANK);
        let lr = c.mm(lr, e);
        let lr = c.rms(lr);
        let laurel = c.binary(Op::Add, lr, cur);
        let layer_att = c
            .layer(il)
            .attention
            .clone()
            .expect("checked by builder_for");
        let o = AttnOpts {
            wo_rows: e,
            ..AttnOpts::default()
        };
        let att_out = if layer_att.caches() {
            let (q, k, v) = c.qkv(cur, &layer_att, false);
            let q = c.rms(q);
            let k = c.rms(k);
            let v = c.unary(Op::RmsNorm, v);
            let q = c.rope(q, pos);
            let k = c.rope(k, pos);
            c.attn(&inp, il, q, k, v, o)
        } else {
            let q = c.mm(cur, layer_att.heads * layer_att.k_head_dim);
            let q = c.reshape(q, [layer_att.k_head_dim, layer_att.heads, t, 1]);
            let q = c.rms(q);
            let q = c.rope(q, pos);
            c.attn_reuse(&inp, il, q, o)
        };
        let cur = c.rms(att_out);
        let cur = c.binary(Op::Add, cur, active);
        let sum = c.binary(Op::Add, cur, laurel);
        let attn_laurel = c.unary(Op::Scale, sum);
        let cur = c.rms(attn_laurel);
        // The feed-forward block: up, gate (gaussian top-k on the first layers), GELU, down.
        let w = c.dense_width(il);
        let up = c.mm(cur, w);
        let mut gate = c.mm(cur, w);
        if il < GEMMA3N_SPARSE_LAYERS {
            let mean = c.g.op(Op::Mean, &[gate], [1, t, 1, 1]);
            let dev = c.binary(Op::Sub, gate, mean);
            let sq = c.unary(Op::Sqr, dev);
            let sum = c.g.op(Op::SumRows, &[sq], [1, t, 1, 1]);
            let var = c.unary(Op::Scale, sum);
            let std = c.unary(Op::Sqrt, var);
            let std = c.unary(Op::Scale, std);
            let cutoff = c.binary(Op::Add, mean, std);
            let cut = c.binary(Op::Sub, gate, cutoff);
            gate = c.unary(Op::Unary, cut);
        }
        let gate = c.unary(Op::Unary, gate);
        let h = c.binary(Op::Mul, up, gate);
        let ffn = c.mm(h, e);
        let ffn = c.rms(ffn);
        let activated = c.binary(Op::Add, ffn, attn_laurel);
        // altup_correct.
        let modalities = altup_router(c, activated);
        let active = slice2d(c, predictions);
        let innovation = c.binary(Op::Sub, activated, active);
        let coefs = c.mm(modalities, na);
        let coefs = c.unary(Op::Scale, coefs);
        let coefs = c.transpose(coefs);
        let coefs = c.cont(coefs, [1, t, na, 1]);
        let innovation = c.g.op(Op::Repeat, &[innovation], [e, t, na, 1]);
        let corrected = c.binary(Op::Mul, innovation, coefs);
        let corrected = c.binary(Op::Add, corrected, predictions);
        // The per-layer input joins the other streams.
        let first = slice2d(c, corrected);
        let first = c.with_weight(Op::Mul, first);
        let first = c.mm(first, ea);
        let first = c.unary(Op::Unary, first);
        let this_layer = slice2d(c, per_layer);
        let first = c.binary(Op::Mul, first, this_layer);
        let first = c.mm(first, e);
        let first = c.rms(first);
        let slice_first = slice2d(c, corrected);
        let rest = c.strided(corrected, [e, t, na - 1, 1]);
        let tmp = c.binary(Op::Add, rest, first);
        x = c.g.op(Op::Concat, &[slice_first, tmp], [e, t, na, 1]);
    }
    // The streams merged back: the others unembedded to the active one's magnitude, averaged.
    let active = slice2d(c, x);
    let target = magnitude(c, active);
    let alt = c.strided(x, [e, t, na - 1, 1]);
    let unembd = c.mm(alt, e);
    let new_mag = magnitude(c, unembd);
    let unembd = c.binary(Op::Mul, unembd, target);
    let unembd = c.binary(Op::Div, unembd, new_mag);
    let mut cur = slice2d(c, x);
    for _ in 0..na - 1 {
        let s = slice2d(c, unembd);
        cur = c.binary(Op::Add, cur, s);
    }
    let cur = c.unary(Op::Scale, cur);
    let out_ids = c.inp_out_ids();
    let cur = c.out_rows(cur, out_ids);
    let norm = c.rms(cur);
    let logits = c.mm(norm, c.m.vocab_size);
    let logits = c.unary(Op::Scale, logits);
    let logits = c.unary(Op::Unary, logits);
    let logits = c.unary(Op::Scale, logits);
    c.finish(norm, logits);
}
