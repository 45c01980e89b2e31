//! The planner: every plan it lists fits under the engine profile it names, and no cheaper
//! feasible option in the search space is left out (checked by brute force on a small space).

use vramplan_core::engine::vllm::{self, Release, VllmArgs};
use vramplan_core::plan::{search, tp_options, Evaluator, Space, Workload};
use vramplan_core::{catalogue, Config, Gpu, KvDtype, ModelDesc, Parallelism, WeightFormat};

fn vllm_eval() -> Box<Evaluator<'static>> {
    Box::new(|m: &ModelDesc, g: &Gpu, c: Config| {
        let mut a = VllmArgs::new(Release::NEWEST);
        a.utilization_given = true;
        vllm::estimate(m, g, c, &a)
    })
}

fn generic_eval() -> Box<Evaluator<'static>> {
    Box::new(|m: &ModelDesc, g: &Gpu, c: Config| vramplan_core::estimate(m, g, c))
}

fn small_space<'a>(model: &'a ModelDesc) -> Space<'a> {
    let cat = catalogue();
    let gpus = ["l4", "a10g", "l40s", "a100-80gb", "h100"]
        .iter()
        .map(|id| {
            let g = cat.gpu(id).unwrap();
            (g, cat.price(&g.id).map(|p| p.usd_per_hour).or(Some(1.0)))
        })
        .collect();
    Space {
        models: vec![model],
        gpus,
        quants: vec![
            WeightFormat::Bf16,
            WeightFormat::Fp8 { block: 0 },
            WeightFormat::Awq { group: 128 },
        ],
        kv_dtypes: vec![KvDtype::F16, KvDtype::Fp8],
        max_gpus: 8,
        utilization: 0.9,
    }
}

fn no_launch(_: &ModelDesc, _: &vramplan_core::plan::Deployment) -> String {
    String::new()
}

#[test]
fn every_plan_fits_under_its_engine_profile() {
    let cat = catalogue();
    let model = cat.model("meta-llama/Llama-3.1-70B-Instruct").unwrap();
    let work = Workload {
        context: 8192,
        concurrency: 32,
        rate: None,
        output_tokens: 256,
    };
    for eval in [vllm_eval(), generic_eval()] {
        let plans = search(&*eval, &small_space(model), &work, &no_launch);
        assert!(!plans.is_empty());
        for d in &plans {
            let gpu = cat.gpu(&d.gpu).unwrap();
            let mut c = Config::new(
                WeightFormat::parse(&d.quant).unwrap(),
                KvDtype::parse(&d.kv_dtype).unwrap(),
                8192,
                32u64.div_ceil(d.replicas),
            );
            c.parallel = Parallelism {
                tp: d.tp,
                pp: d.pp,
                dp: 1,
            };
            c.utilization = 0.9;
            let e = eval(model, gpu, c).unwrap();
            assert!(e.fits, "plan {d:?} does not fit: {e:?}");
            assert!(
                d.max_concurrency >= 32,
                "plan {d:?} does not reach 32 sequences"
            );
            assert_eq!(d.gpus, d.tp * d.pp * d.replicas);
        }
    }
}

#[test]
fn no_cheaper_feasible_option_is_left_out() {
    let cat = catalogue();
    let model = cat.model("qwen2.5-14b-instruct").unwrap();
    let work = Workload {
        context: 16384,
        concurrency: 24,
        rate: None,
        output_tokens: 256,
    };
    let eval = vllm_eval();
    let space = small_space(model);
    let plans = search(&*eval, &space, &work, &no_launch);
    let best = plans.first().and_then(|d| d.cost_per_hour).expect("a plan");
    // Brute force: every tp × pp × dp ≤ 8 GPUs, every kind, precision and KV dtype.
    let mut brute = f64::INFINITY;
    for &(gpu, price) in &space.gpus {
        for &q in &space.quants {
            for &kv in &space.kv_dtypes {
                for tp in 1..=8u64 {
                    for pp in 1..=8u64 {
                        for dp in 1..=8u64 {
                            let n = tp * pp * dp;
                            if n > 8 || (Parallelism { tp, pp, dp: 1 }).check(model).is_err() {
                                continue;
                            }
                            let mut c =
                                Config::new(q, kv, work.context, work.concurrency.div_ceil(dp));
                            c.parallel = Parallelism { tp, pp, dp: 1 };
                            c.utilization = 0.9;
                            if eval(model, gpu, c).is_ok_and(|e| e.fits) {
                                if price.unwrap() * n as f64 + 1e-9 < brute {
                                    eprintln!(
                                        "brute: {} {:?} {:?} tp{tp} pp{pp} dp{dp} ${}",
                                        gpu.id,
                                        q,
                                        kv,
                                        price.unwrap() * n as f64
                                    );
                                }
                                brute = brute.min(price.unwrap() * n as f64);
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        (best - brute).abs() < 1e-9,
        "planner's cheapest ${best}/h, brute force ${brute}/h"
    );
    assert!(tp_options(model, 8).contains(&1));
}

#[test]
fn nothing_fits_gives_advice_with_figures() {
    let cat = catalogue();
    let model = cat.model("meta-llama/Llama-3.1-70B-Instruct").unwrap();
    let gpu = cat.gpu("l40s").unwrap();
    let eval = generic_eval();
    // 141 GB of bf16 weights on one 48 GB L40S: nothing fits as asked.
    let c = Config::new(WeightFormat::Bf16, KvDtype::F16, 8192, 8);
    assert!(!eval(model, gpu, c).unwrap().fits);
    let gpus: Vec<_> = cat
        .gpus
        .iter()
        .map(|g| (g, cat.price(&g.id).map(|p| p.usd_per_hour)))
        .collect();
    let advice = vramplan_core::plan::advise(&*eval, model, gpu, c, &gpus);
    // More L40S cards (2 hold 141 GB of weights only with room to spare: 4 with TP), and a
    // larger kind.
    assert!(
        advice
            .iter()
            .any(|a| a.change.contains("× l40s (tensor parallel")),
        "{advice:?}"
    );
    assert!(
        advice
            .iter()
            .any(|a| a.change.contains(" × ") && !a.change.contains("l40s")),
        "{advice:?}"
    );
    assert!(
        advice.iter().all(|a| a.detail.contains("GB")
            || a.detail.contains("tokens")
            || a.detail.contains("sequences")),
        "{advice:?}"
    );
}

#[test]
fn a_rate_target_adds_replicas_until_the_roofline_sustains_it() {
    let cat = catalogue();
    let model = cat.model("meta-llama/Llama-3.1-8B-Instruct").unwrap();
    let l4 = cat.gpu("l4").unwrap();
    let space = Space {
        models: vec![model],
        gpus: vec![(l4, Some(1.0))],
        quants: vec![WeightFormat::Bf16],
        kv_dtypes: vec![KvDtype::F16],
        max_gpus: 8,
        utilization: 0.9,
    };
    let eval = generic_eval();
    let base = Workload {
        context: 2048,
        concurrency: 1,
        rate: None,
        output_tokens: 256,
    };
    let one = search(&*eval, &space, &base, &no_launch);
    let single = one
        .iter()
        .find(|d| d.gpus == 1)
        .expect("one L4 holds the 8B model");
    // Ask for 1.5× what one replica sustains: the cheapest plan needs more GPUs, and reaches it.
    let target = single.max_rate * 1.5;
    let fast = search(
        &*eval,
        &space,
        &Workload {
            rate: Some(target),
            ..base
        },
        &no_launch,
    );
    let best = fast.first().expect("a plan that sustains the rate");
    assert!(best.gpus >= 2, "{best:?}");
    assert!(best.max_rate >= target, "{} < {target}", best.max_rate);
}
