//! The catalogue as data: every entry parses, resolves, names its source, and its parameter
//! count computed from the architecture is within 1% of the published total.

use std::collections::HashSet;
use vramplan_core::catalogue;

#[test]
fn every_model_matches_its_published_parameter_count() {
    let cat = catalogue();
    let mut failures = Vec::new();
    let mut checked = 0;
    for m in &cat.models {
        if m.base.is_some() {
            continue; // same architecture as its base, which is checked itself
        }
        // Entries added without a sourced total (data/SCHEMA.md: nominal counts only) are
        // checked against the transformers oracle instead (tests/oracle.rs).
        let Some(published) = m.published_params else {
            continue;
        };
        assert!(
            m.published_params_source.is_some(),
            "{} does not say where its published count comes from",
            m.id
        );
        let computed = m.params();
        let err = (computed as f64 - published as f64) / published as f64;
        if err.abs() > 0.01 {
            failures.push(format!(
                "{}: computed {computed}, published {published} ({:+.2}%)",
                m.id,
                err * 100.0
            ));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} models off by more than 1%:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        checked >= 60,
        "at least 60 architectures are required, found {checked}"
    );
}

#[test]
fn every_model_has_a_source_and_unique_names() {
    let cat = catalogue();
    let mut names = HashSet::new();
    for m in &cat.models {
        assert!(
            m.source.starts_with("http"),
            "{} has no source URL: {:?}",
            m.id,
            m.source
        );
        for n in std::iter::once(&m.id).chain(m.aliases.iter()) {
            assert!(
                names.insert(n.to_ascii_lowercase()),
                "name '{n}' is used twice in the catalogue"
            );
        }
        m.validate().unwrap();
    }
}

#[test]
fn required_gpus_resolve_with_sources() {
    let cat = catalogue();
    assert!(
        cat.gpus.len() >= 25,
        "at least 25 GPUs are required, found {}",
        cat.gpus.len()
    );
    for id in [
        "t4",
        "v100-16gb",
        "v100-32gb",
        "a10",
        "a10g",
        "l4",
        "a40",
        "l40",
        "l40s",
        "rtx-3090",
        "rtx-4090",
        "rtx-5090",
        "rtx-a6000",
        "rtx-6000-ada",
        "a100-40gb",
        "a100-80gb",
        "h100-pcie",
        "h100",
        "h100-nvl",
        "h200",
        "gh200",
        "b200",
        "mi250x",
        "mi300x",
        "mi325x",
    ] {
        let g = cat.gpu(id).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !g.source.is_empty() && !g.memory_source.is_empty(),
            "{id} lacks a source"
        );
        assert!(
            g.memory_bytes > 0 && g.hbm_bandwidth_bytes_per_s > 0.0,
            "{id} lacks memory or bandwidth"
        );
    }
    // nvidia-smi's name resolves to the same card.
    assert_eq!(cat.gpu("NVIDIA H100 80GB HBM3").unwrap().id, "h100");
}

#[test]
fn unknown_names_list_three_nearest() {
    let cat = catalogue();
    let e = cat.model("llama-3.1-8x").unwrap_err();
    assert!(
        e.contains("unknown model 'llama-3.1-8x'") && e.contains("nearest:"),
        "{e}"
    );
    assert!(
        e.contains("llama-3.1-8b"),
        "the nearest names should include llama-3.1-8b: {e}"
    );
    let e = cat.gpu("h1000").unwrap_err();
    assert!(e.contains("h100"), "{e}");
}

#[test]
fn lookups_are_case_insensitive() {
    let cat = catalogue();
    assert_eq!(
        cat.model("META-LLAMA/llama-3.1-8b-instruct").unwrap().id,
        "meta-llama/Llama-3.1-8B-Instruct"
    );
}
