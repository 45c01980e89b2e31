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
        e.contains("nearest: meta-llama/Llama-3.1-8B,"),
        "the nearest entry should be Llama-3.1-8B: {e}"
    );
    let e = cat.gpu("h1000").unwrap_err();
    assert!(e.contains("h100"), "{e}");
}

/// Names as people type them (issue 16): repository names without the organisation, ids
/// without case or punctuation, GPUs as written in specifications and by nvidia-smi/rocm-smi.
#[test]
fn names_as_people_type_them() {
    let cat = catalogue();
    let model = |q: &str| {
        cat.model(q)
            .map(|m| m.id.as_str())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        model("Mistral-Small-24B-Instruct-2501"),
        "mistralai/Mistral-Small-24B-Instruct-2501"
    );
    assert_eq!(
        model("llama3.1-8b-instruct"),
        "meta-llama/Llama-3.1-8B-Instruct"
    );
    assert_eq!(
        model("LLAMA_3.1_8B_INSTRUCT"),
        "meta-llama/Llama-3.1-8B-Instruct"
    );
    assert_eq!(
        model("Llama-3.1-8B-Instruct"),
        "meta-llama/Llama-3.1-8B-Instruct"
    );
    assert_eq!(model("deepseek v3"), "deepseek-ai/DeepSeek-V3");
    let gpu = |q: &str| {
        cat.gpu(q)
            .map(|g| g.id.as_str())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for (typed, id) in [
        ("RTX 4090", "rtx-4090"),
        ("4090", "rtx-4090"),
        ("GeForce RTX 4090", "rtx-4090"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("H100 SXM", "h100"),
        ("H100", "h100"),
        ("H100 80GB", "h100"),
        ("H100 PCIe", "h100-pcie"),
        ("A100 80GB", "a100-80gb"),
        ("A100 40GB", "a100-40gb"),
        ("A100", "a100-80gb"),
        ("Tesla T4", "t4"),
        ("MI300X", "mi300x"),
        ("AMD Instinct MI300X OAM", "mi300x"),
        ("RTX 6000 Ada", "rtx-6000-ada"),
        ("M2 Ultra", "m2-ultra-192gb"),
    ] {
        assert_eq!(gpu(typed), id, "{typed}");
    }
    // Every name nvidia-smi or rocm-smi prints for a catalogue card finds that card, with or
    // without the vendor's words and in any case.
    for g in &cat.gpus {
        for smi in &g.smi_names {
            assert_eq!(gpu(smi), g.id, "{smi}");
            assert_eq!(gpu(&smi.to_uppercase()), g.id, "{smi}");
        }
    }
}

/// Suggestions share a word with what was typed: GLM-4.7 is not near gemma-3-4b (GLM-4.6,
/// which joined the catalogue with its stored config.json, is).
#[test]
fn suggestions_are_likely_meanings() {
    let cat = catalogue();
    let e = cat.model("GLM-4.7").unwrap_err();
    assert!(!e.contains("gemma"), "{e}");
    assert!(e.contains("zai-org/GLM-4.6"), "{e}");
    let e = cat.model("lama-3.1-70b-instruct").unwrap_err();
    assert!(
        e.contains("nearest: meta-llama/Llama-3.1-70B-Instruct,"),
        "{e}"
    );
    let e = cat.gpu("RTX 4080").unwrap_err();
    assert!(e.contains("nearest: rtx-"), "{e}");
}

#[test]
fn lookups_are_case_insensitive() {
    let cat = catalogue();
    assert_eq!(
        cat.model("META-LLAMA/llama-3.1-8b-instruct").unwrap().id,
        "meta-llama/Llama-3.1-8B-Instruct"
    );
}
