//! What runs on given hardware: for one model on N GPUs of a kind, the best weight precision and
//! KV-cache dtype whose configuration an engine profile accepts at a context and concurrency,
//! with the longest context and the most sequences that configuration reaches, or the reason
//! nothing does. Pure: the engine is an `Evaluator` (plan.rs), the precisions are given.

use crate::estimate::{Config, Estimate};
use crate::gpu::Gpu;
use crate::model::ModelDesc;
use crate::parallel::Parallelism;
use crate::plan::{tp_options, Evaluator};
use crate::precision::{KvDtype, WeightFormat};
use crate::units::gb_gib;

/// The request: sequences of `context` tokens, `concurrency` of them at once, on `gpus` GPUs.
#[derive(Debug, Clone, Copy)]
pub struct Want {
    pub context: u64,
    pub concurrency: u64,
    pub gpus: u64,
    /// Share of each GPU the engine may use (its default).
    pub utilization: f64,
}

/// The best configuration that serves `Want`, and the estimate that says so.
#[derive(Debug, Clone)]
pub struct Found {
    pub weights: WeightFormat,
    pub kv_dtype: KvDtype,
    pub parallel: Parallelism,
    pub estimate: Estimate,
}

/// How `gpus` GPUs hold one replica of the model: the largest tensor-parallel size that
/// divides both the GPU count and the model's heads, the rest as pipeline stages (vLLM's
/// usual layout: tensor parallel within a node). The refusal when no split uses every GPU.
pub fn split(model: &ModelDesc, gpus: u64) -> Result<Parallelism, String> {
    let all_pipeline = Parallelism {
        tp: 1,
        pp: gpus,
        dp: 1,
    };
    tp_options(model, gpus)
        .into_iter()
        .rev()
        .filter(|tp| gpus.is_multiple_of(*tp))
        .map(|tp| Parallelism {
            tp,
            pp: gpus / tp,
            dp: 1,
        })
        .find(|p| p.check(model).is_ok())
        .ok_or_else(|| {
            all_pipeline
                .check(model)
                .err()
                .unwrap_or_else(|| format!("no split over {gpus} GPUs"))
        })
}

/// Tries `weights` in order (best first) and, for each, `kv_dtypes` in order: the first that
/// the evaluator says fits wins, so the weights stay as precise as the memory allows before
/// the KV cache gives way. Otherwise the reason, from the lightest candidate tried (the last of
/// each list): the engine's start-up error, its refusal, or how much memory it is short.
pub fn best(
    eval: &Evaluator,
    model: &ModelDesc,
    gpu: &Gpu,
    want: Want,
    weights: &[WeightFormat],
    kv_dtypes: &[KvDtype],
) -> Result<Found, String> {
    let parallel = split(model, want.gpus)?;
    let mut last: Option<Result<Estimate, String>> = None;
    for &w in weights {
        for &kv in kv_dtypes {
            let mut c = Config::new(w, kv, want.context, want.concurrency);
            c.parallel = parallel;
            c.utilization = want.utilization;
            let e = eval(model, gpu, c);
            if let Ok(est) = &e {
                if est.fits {
                    return Ok(Found {
                        weights: w,
                        kv_dtype: kv,
                        parallel,
                        estimate: est.clone(),
                    });
                }
            }
            last = Some(e);
        }
    }
    Err(match last {
        None => "no precision to try".to_string(),
        Some(Err(refusal)) => refusal,
        Some(Ok(e)) => miss_reason(&e),
    })
}

/// One line on why the lightest configuration does not serve the request.
fn miss_reason(e: &Estimate) -> String {
    let lightest = format!("even in {} with a {} KV cache", e.quant, e.kv_dtype);
    if let Some(err) = &e.startup_error {
        return format!("{lightest} the engine would not start: {}", err.message);
    }
    if e.margin_bytes < 0 {
        let weights_alone = e.weights_bytes > e.usable_bytes;
        if weights_alone {
            return format!(
                "{lightest} the weights alone take {} of the {} usable per GPU",
                gb_gib(e.weights_bytes),
                gb_gib(e.usable_bytes)
            );
        }
        return format!(
            "{lightest} it needs {} per GPU, {} more than the {} usable",
            gb_gib(e.total_bytes),
            gb_gib(e.margin_bytes.unsigned_abs()),
            gb_gib(e.usable_bytes)
        );
    }
    format!(
        "{lightest} {} sequences of {} tokens do not fit (at most {})",
        e.batch, e.context, e.max_concurrency
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    fn generic(m: &ModelDesc, g: &Gpu, c: Config) -> Result<Estimate, String> {
        crate::estimate(m, g, c)
    }

    #[test]
    fn the_most_precise_weights_that_fit_win() {
        let cat = catalogue();
        let m = cat.model("llama-3.1-70b-instruct").unwrap();
        let h100 = cat.gpu("h100").unwrap();
        let ladder = ["bf16", "fp8", "awq"].map(|q| WeightFormat::parse(q).unwrap());
        let kv = [KvDtype::F16, KvDtype::Fp8];
        let want = Want {
            context: 8192,
            concurrency: 1,
            gpus: 1,
            utilization: 0.9,
        };
        // 70.55B parameters on one H100 (79.19 GiB × 0.9 = 76.53 GB usable): bf16 weights are
        // 141.11 GB; fp8 weights 72.67 GB (fp8 linears, 16-bit embeddings and head) + 2.68 GB of
        // fp16 KV (8192 × 327,680 B) + activations and overhead = 76.46 GB: fp8 with an fp16
        // cache is the best that fits, by 64 MB.
        let f = best(&generic, m, h100, want, &ladder, &kv).unwrap();
        assert_eq!(f.weights.name(), "fp8");
        assert_eq!(f.kv_dtype, KvDtype::F16);
        assert_eq!(f.estimate.total_bytes, 76_462_483_456);
        // On two H100s (tensor parallel 2) bf16 fits: 70.56 GB of weights per GPU.
        let f = best(&generic, m, h100, Want { gpus: 2, ..want }, &ladder, &kv).unwrap();
        assert_eq!(f.weights.name(), "bf16");
        assert_eq!((f.parallel.tp, f.parallel.pp), (2, 1));
        // On an RTX 4090 nothing fits: the reason names the lightest try and its shortfall.
        let g = cat.gpu("rtx-4090").unwrap();
        let why = best(&generic, m, g, want, &ladder, &kv).unwrap_err();
        assert!(why.starts_with("even in awq with a fp8 KV cache"), "{why}");
        assert!(why.contains("weights alone"), "{why}");
    }

    #[test]
    fn splits_use_every_gpu() {
        let m = catalogue().model("llama-3.1-8b").unwrap();
        // 32 heads, 8 KV heads: TP 2 and 4 divide; 6 GPUs are TP 2 × PP 3.
        let p = split(m, 6).unwrap();
        assert_eq!((p.tp, p.pp), (2, 3));
        assert_eq!(split(m, 4).unwrap().tp, 4);
    }
}
