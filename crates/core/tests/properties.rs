//! Invariants over the whole catalogue: more context, batch or precision never needs less
//! memory; a GPU count that does not fit means no smaller count fits; splits add up; the
//! simulated llama.cpp compute buffer lies between its largest tensor and the sum of all.

use proptest::prelude::*;
use vramplan_core::estimate::Sizing;
use vramplan_core::parallel::weight_bytes_per_stage;
use vramplan_core::{catalogue, Config, KvDtype, Parallelism, WeightFormat};

fn model_index() -> impl Strategy<Value = usize> {
    0..catalogue().models.len()
}
fn gpu_index() -> impl Strategy<Value = usize> {
    0..catalogue().gpus.len()
}

/// Weight formats from most to fewest bytes per weight, within one family of layouts (HF
/// checkpoints keep embeddings 16-bit; GGUF quantizes them, so the two chains are not mixed).
const BY_PRECISION: &[&str] = &["fp32", "bf16", "int8", "nf4", "awq"];
const GGUF_BY_PRECISION: &[&str] = &["fp32", "q8_0", "q6_k", "q5_k", "q4_k", "q3_k", "q2_k"];
const KV_BY_PRECISION: &[&str] = &["fp32", "fp16", "q8_0", "fp8", "q4_0"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn more_context_or_batch_never_needs_less(m in model_index(), g in gpu_index(), ctx in 1u64..300_000, extra in 0u64..100_000, batch in 1u64..512, more in 0u64..512) {
        let cat = catalogue();
        let (model, gpu) = (&cat.models[m], &cat.gpus[g]);
        let inv = model.inventory();
        let s = Sizing::new(model, inv, gpu.memory_bytes, Config::new(model.native_format(), KvDtype::F16, ctx, batch));
        prop_assert!(s.total_bytes(batch, ctx + extra) >= s.total_bytes(batch, ctx));
        prop_assert!(s.total_bytes(batch + more, ctx) >= s.total_bytes(batch, ctx));
        // The searches agree with the predicate at their answer and one past it.
        let mc = s.max_concurrency(ctx);
        if mc > 0 { prop_assert!(s.fits(mc, ctx)); }
        prop_assert!(!s.fits(mc + 1, ctx) || mc == 1 << 32);
        let mx = s.max_context(batch);
        if mx > 0 { prop_assert!(s.fits(batch, mx)); }
        prop_assert!(!s.fits(batch, mx + 1) || mx == 1 << 34);
    }

    #[test]
    fn higher_precision_never_needs_less(m in model_index(), i in 0usize..BY_PRECISION.len() - 1, j in 0usize..GGUF_BY_PRECISION.len() - 1, k in 0usize..KV_BY_PRECISION.len() - 1) {
        let model = &catalogue().models[m];
        let inv = model.inventory();
        let par = Parallelism::default();
        let hi = WeightFormat::parse(BY_PRECISION[i]).unwrap();
        let lo = WeightFormat::parse(BY_PRECISION[i + 1]).unwrap();
        let w = |f| weight_bytes_per_stage(model, inv, f, &par)[0];
        prop_assert!(w(hi) >= w(lo), "{} {} < {} {}", BY_PRECISION[i], w(hi), BY_PRECISION[i + 1], w(lo));
        let ghi = WeightFormat::parse(GGUF_BY_PRECISION[j]).unwrap();
        let glo = WeightFormat::parse(GGUF_BY_PRECISION[j + 1]).unwrap();
        prop_assert!(w(ghi) >= w(glo), "{} < {}", GGUF_BY_PRECISION[j], GGUF_BY_PRECISION[j + 1]);
        let kv_hi = vramplan_core::kv::kv_bytes_per_token(model, KvDtype::parse(KV_BY_PRECISION[k]).unwrap());
        let kv_lo = vramplan_core::kv::kv_bytes_per_token(model, KvDtype::parse(KV_BY_PRECISION[k + 1]).unwrap());
        prop_assert!(kv_hi >= kv_lo);
    }

    #[test]
    fn fewer_gpus_never_fit_what_more_do_not(m in model_index(), g in gpu_index(), ctx in 1u64..200_000, batch in 1u64..256) {
        let cat = catalogue();
        let (model, gpu) = (&cat.models[m], &cat.gpus[g]);
        let inv = model.inventory();
        let valid: Vec<u64> = (1..=64).filter(|&tp| Parallelism { tp, pp: 1, dp: 1 }.check(model).is_ok()).collect();
        let fits: Vec<bool> = valid.iter().map(|&tp| {
            let mut c = Config::new(model.native_format(), KvDtype::F16, ctx, batch);
            c.parallel = Parallelism { tp, pp: 1, dp: 1 };
            Sizing::new(model, inv, gpu.memory_bytes, c).fits(batch, ctx)
        }).collect();
        // Once a count fits, every larger valid count fits too.
        if let Some(first) = fits.iter().position(|&f| f) {
            prop_assert!(fits[first..].iter().all(|&f| f), "{}: fits at tp={} but not at a larger tp: {:?}", model.id, valid[first], fits);
        }
    }

    #[test]
    fn pipeline_split_adds_up(m in model_index(), pp in 1u64..9) {
        let model = &catalogue().models[m];
        prop_assume!(pp <= model.num_layers);
        let inv = model.inventory();
        let f = model.native_format();
        let whole = weight_bytes_per_stage(model, inv, f, &Parallelism::default())[0];
        let stages = weight_bytes_per_stage(model, inv, f, &Parallelism { tp: 1, pp, dp: 1 });
        prop_assert_eq!(stages.len() as u64, pp);
        prop_assert_eq!(stages.iter().sum::<u64>(), whole);
    }

    #[test]
    fn tensor_split_covers_the_model(m in model_index(), tp in prop::sample::select(vec![1u64, 2, 4, 8])) {
        let model = &catalogue().models[m];
        let par = Parallelism { tp, pp: 1, dp: 1 };
        prop_assume!(par.check(model).is_ok());
        let inv = model.inventory();
        let f = WeightFormat::Bf16;
        let whole = weight_bytes_per_stage(model, inv, f, &Parallelism::default())[0];
        let per_rank = weight_bytes_per_stage(model, inv, f, &par)[0];
        // Every rank holds at least its share; replicated tensors (norms, routers, MLA
        // down-projections, KV heads when tp > KV heads) make the sum exceed the whole.
        prop_assert!(per_rank * tp >= whole);
        prop_assert!(per_rank <= whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    // ggml-alloc can reuse memory but never overlaps live tensors: the buffer holds at least the
    // logits [n_vocab, n_ubatch] f32 and at most every tensor of the graph side by side.
    #[test]
    fn simulated_compute_buffer_is_bounded(m in model_index(), ctx in 1u64..40_000, seqs in 1u64..5, ub in prop::sample::select(vec![64u64, 256, 512, 2048]), fa in any::<bool>(), quant_k in any::<bool>(), unified in any::<bool>()) {
        use vramplan_core::engine::llamacpp::{self, ggml_alloc, FlashAttn, LlamaCppArgs};
        let model = &catalogue().models[m];
        if !llamacpp::simulates_cpu_graph(model) { return Ok(()); }
        let a = LlamaCppArgs {
            n_ctx: ctx,
            n_seq: seqs,
            kv_unified: unified,
            n_ubatch: ub,
            flash_attn: FlashAttn::parse(if fa { "on" } else { "off" }).unwrap(),
            type_k: KvDtype::parse(if quant_k { "q8_0" } else { "f16" }).unwrap(),
            n_gpu_layers: Some(0),
            ..LlamaCppArgs::default()
        };
        let buffer = llamacpp::cpu_graph_buffer_bytes(model, &a).unwrap();
        let cs = llamacpp::context_sizes(model, &a);
        let logits = model.vocab_size * cs.n_ubatch * 4;
        prop_assert!(buffer >= logits, "{} < logits {}", buffer, logits);
        // The same graph, to add up every tensor it allocates (32-byte aligned).
        let g = llamacpp::cpu_reserve_graph(model, &a).unwrap();
        let all: u64 = g.tensors.iter().filter(|t| !t.external && t.view_src.is_none()).map(|t| t.bytes().div_ceil(32) * 32).sum();
        prop_assert_eq!(ggml_alloc::buffer_size(&g, 32), buffer);
        prop_assert!(buffer <= all, "{} > sum of tensors {}", buffer, all);
    }
}

#[test]
fn absurd_inputs_are_refused_not_overflowed() {
    let cat = catalogue();
    let model = cat.model("meta-llama/Llama-3.1-8B-Instruct").unwrap();
    let gpu = cat.gpu("h100").unwrap();
    let huge = Config::new(WeightFormat::Bf16, KvDtype::F16, 1_000_000_000_000_000, 1);
    assert!(vramplan_core::estimate(model, gpu, huge)
        .unwrap_err()
        .contains("absurd"));
    let zero = Config::new(WeightFormat::Bf16, KvDtype::F16, 8192, 0);
    assert!(vramplan_core::estimate(model, gpu, zero)
        .unwrap_err()
        .contains("at least 1"));
    // Each in range, their product beyond any KV cache (limits.rs MAX_CACHED_TOKENS): refused
    // rather than saturated at 2^64 − 1 bytes.
    let big = Config::new(WeightFormat::Bf16, KvDtype::F16, 1 << 34, 1 << 32);
    assert!(vramplan_core::estimate(model, gpu, big)
        .unwrap_err()
        .contains("tokens in the KV cache is beyond any deployment (limit 2^34"));
    // The largest product allowed gives a figure, far below 2^64: 2^34 tokens × 128 KiB.
    let edge = Config::new(WeightFormat::Bf16, KvDtype::F16, 1 << 17, 1 << 17);
    let e = vramplan_core::estimate(model, gpu, edge).unwrap();
    assert!(!e.fits && e.kv_cache_bytes == (1 << 34) * 131_072);
}
