//! The whole path a model file takes, on arbitrary bytes: detection, the reader (GGUF,
//! safetensors or config.json), the mapping to the model description, and the estimates of every
//! engine profile at a few configurations. Each step must answer or refuse in one line: never
//! panic, never allocate beyond the limits (libFuzzer's -rss_limit_mb), never loop for long
//! (-timeout).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vramplan_core::engine::{llamacpp, sglang, vllm};
use vramplan_core::{catalogue, estimate, Config, KvDtype};
use vramplan_formats::{inspect_source, to_model_desc, MemorySource};

fn one_line<T, E: std::fmt::Display>(r: Result<T, E>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(file) = one_line(inspect_source(&MemorySource::new("fuzz", data), "fuzz")) else {
        return;
    };
    let Some(model) = one_line(to_model_desc(&file)) else {
        return;
    };
    let desc = &model.desc;
    let _ = desc.params();
    let _ = desc.active_params();
    let gpu = catalogue().gpu("h100").expect("h100 in the catalogue");
    for (context, batch) in [(1, 1), (4096, 8), (1 << 20, 256)] {
        let config = Config::new(desc.native_format(), KvDtype::F16, context, batch);
        if let Some(e) = one_line(estimate(desc, gpu, config)) {
            assert!(e.total_bytes >= e.weights_bytes);
        }
        // The oldest and newest releases: their rules differ most (sampler, CUDA graphs,
        // the extensible KV cache; SGLang's fraction formula).
        for release in [vllm::Release::OLDEST, vllm::Release::NEWEST] {
            let _ = one_line(vllm::estimate(
                desc,
                gpu,
                config,
                &vllm::VllmArgs::new(release),
            ));
        }
        for release in [sglang::SglangRelease::OLDEST, sglang::SglangRelease::NEWEST] {
            let _ = one_line(sglang::estimate(
                desc,
                gpu,
                config,
                &sglang::SglangArgs::new(release),
            ));
        }
        if let Some(mix) = one_line(llamacpp::TypeMix::from_format(config.weights)) {
            let args = llamacpp::LlamaCppArgs {
                n_ctx: context,
                ..llamacpp::LlamaCppArgs::default()
            };
            let _ = one_line(llamacpp::estimate(desc, gpu, config, &mix, &args));
        }
    }
});
