//! vLLM's release rules (data/engines/vllm.toml): for a release, which way each memory-relevant
//! mechanism works, with the file and function of that release it comes from; and the observed
//! constants (CUDA, cuBLAS, NCCL memory that vLLM's source does not determine) with the records
//! they were read from. The profile (engine/vllm.rs) reads only the typed `Rules`; the data file
//! is the one place a release's behaviour is written down.

use super::Release;
use crate::engine::releases::Version;
pub use crate::engine::releases::{RuleEntry, RuleTable as Table};
use std::sync::OnceLock;

const FILE: &str = include_str!("../../../data/engines/vllm.toml");

impl Release {
    pub fn version(&self) -> Version {
        Version {
            minor: self.minor,
            patch: self.patch,
        }
    }
}

/// Parses the rules file (the embedded one, or another text in tests).
pub fn parse(text: &str) -> Result<Table, String> {
    let table = Table::parse(text, "vllm.toml", "vLLM")?;
    if table.oldest != Release::OLDEST.version() || table.newest != Release::NEWEST.version() {
        return Err("data/engines/vllm.toml: oldest/newest disagree with vllm::Release".into());
    }
    // Every rule must resolve to a known value on every release it covers.
    for r in breakpoints(&table) {
        Rules::resolve(&table, r)?;
    }
    Ok(table)
}

/// The releases at which the rules can change: every X.Y.0 of the table's span and the patch
/// releases some rule names as its `since` (0.11.1: granite-4.0-micro's layer_types check).
fn breakpoints(table: &Table) -> Vec<Release> {
    let mut v: Vec<Release> = (Release::OLDEST.minor..=Release::NEWEST.minor)
        .map(|minor| Release { minor, patch: 0 })
        .collect();
    v.extend(
        table
            .patch_releases()
            .into_iter()
            .map(|p| Release {
                minor: p.minor,
                patch: p.patch,
            })
            .filter(|r| *r >= Release::OLDEST && *r <= Release::NEWEST),
    );
    v.sort();
    v.dedup();
    v
}

/// The embedded table, parsed once (its validity is a test: `embedded_table_parses`).
pub fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| match parse(FILE) {
        Ok(t) => t,
        Err(e) => panic!("embedded vLLM rules are invalid: {e}"),
    })
}

/// The default `--gpu-memory-utilization`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UtilizationDefault {
    Fixed(f64),
    /// 1.0 with the extensible KV cache (0.34 on CUDA), else 0.92.
    Extensible,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvSizing {
    /// From the profiling run: requested − weights − activation peak − non-torch [− graphs].
    Profile,
    /// From the memory free after warmup and graph capture (0.34).
    Extensible,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// NCCL/custom all-reduce init memory counts as non-torch (≤ 0.10).
    BeforeDistributedInit,
    AfterDistributedInit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopKTopP {
    /// torch.sort over [requests, vocab].
    Sort,
    /// The Triton kernel from 0.17 (batches of 8 or more).
    Triton,
}

/// Which models run on Model Runner V2 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mrv2 {
    Never,
    Qwen3Dense,
    LlamaMistralQwen3Dense,
    /// Every non-MoE model (and a few listed MoE architectures).
    Dense,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDefaults {
    /// max_num_seqs = min(default, max_num_batched_tokens) (≤ 0.11).
    SeqsCappedByTokens,
    /// max_num_batched_tokens = min(max_num_seqs × max_model_len, default) (0.12+).
    TokensCappedBySeqsTimesLen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchTiers {
    Tier70NotA100,
    Tier160Then70NotA100,
    Tier160Then70NotA100NotGb10,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudagraphProfile {
    None,
    /// profile_cudagraph_memory() inside the profiling context (0.18–0.26).
    InsideProfile,
    AfterProfile,
}

/// How many layers of each attention type share one KV group (kv_cache_utils.py
/// `_get_kv_cache_groups_uniform_page_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvGroupSize {
    Min,
    /// The largest count when it is below 1.5 × the smallest (0.18+).
    MaxWithin1_5x,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvTokensReport {
    /// num_blocks // groups × block size.
    Blocks,
    /// int(max_concurrency × max_model_len) (0.21+).
    Concurrency,
}

/// Tokens in flight that sliding-window and chunked-local layers reserve beyond their window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowInFlight {
    /// max_num_batched_tokens (≤ 0.25).
    Batched,
    /// max_concurrent_batches × max_num_batched_tokens; 2 batches with async scheduling on
    /// Model Runner V1, PP + 1 on V2 (0.26–0.33).
    ConcurrentBatches,
    /// PP + 1 batches with async scheduling on every runner (0.34).
    ConcurrentBatchesPpPlus1,
}

/// Whether hybrid models run with prefix caching (and so a Mamba cache mode other than
/// "none") by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HybridPrefixCaching {
    /// Always disabled for hybrid models (0.10–0.11).
    ForcedOff,
    /// Off unless --enable-prefix-caching; then kept only for Mamba/Mamba-2 models (0.12–0.15).
    OffByDefault,
    /// Off unless asked; --mamba-cache-mode all/align (0.16–0.25).
    OffByDefaultModes,
    /// On by default: "all" for Mamba/Mamba-2 models, "align" for the others (0.26+).
    OnByDefault,
}

/// The kernel alignment of the unified hybrid block size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HybridAlignment {
    /// 16 tokens whatever the attention (≤ 0.11).
    Sixteen,
    /// The attention backend's: 16, 64 for MLA (0.12+).
    Backend,
}

/// How vLLM decides a model is hybrid (`ModelConfig.is_hybrid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HybridDetection {
    /// From the model class alone (0.10–0.11.0): a hybrid class with no recurrent layer still
    /// gets its block size raised to its config's state page.
    ModelClass,
    /// A config whose `layer_types` are all "attention" is not hybrid (0.11.1+).
    LayerTypes,
}

/// Which models take the SSM-state dtype from their config when --mamba-ssm-cache-dtype is auto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfSsmDtype {
    None,
    /// Nemotron-H: config.json's mamba_ssm_cache_dtype, else float16 (0.13+).
    NemotronH,
    /// and Qwen3.5: config.json's mamba_ssm_dtype (0.17+).
    NemotronHQwen35,
}

/// Whether a default install has OpenAI's triton_kernels for the MXFP4 MoE Triton path, and what
/// that path keeps of the loaded e8m0 scales after swizzling them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mxfp4Triton {
    /// Not installed with vLLM (0.10–0.11): `get_mxfp4_backend` falls back to Marlin on CUDA.
    NotBundled,
    /// Built in (0.12+); `process_weights_after_loading` swizzles the scales into new tensors and
    /// keeps the loaded `w13_weight_scale`/`w2_weight_scale` Parameters too (0.12–0.33).
    BundledScalesKept,
    /// `store_params_in_triton` backs the Parameters and the swizzled tensors by one storage (0.34).
    BundledSharedStorage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileLog {
    NonTorch,
    TotalConsumed,
}

/// A release's rules, typed, with the entries they came from.
#[derive(Debug, Clone)]
pub struct Rules {
    pub utilization_default: UtilizationDefault,
    pub kv_sizing: KvSizing,
    pub baseline: Baseline,
    pub top_k_top_p: TopKTopP,
    pub mrv2: Mrv2,
    pub mrv2_warmup_pass: bool,
    pub batch_defaults: BatchDefaults,
    pub batch_tiers: BatchTiers,
    pub cudagraph_profile: CudagraphProfile,
    pub cudagraph_charged: bool,
    pub kv_tokens_report: KvTokensReport,
    pub profile_log: ProfileLog,
    pub kv_group_size: KvGroupSize,
    pub hybrid_prefix_caching: HybridPrefixCaching,
    pub hybrid_alignment: HybridAlignment,
    pub hybrid_detection: HybridDetection,
    pub hf_ssm_dtype: HfSsmDtype,
    pub window_in_flight: WindowInFlight,
    pub mxfp4_triton: Mxfp4Triton,
    /// The entries in force, in the order of the fields above.
    pub applied: Vec<&'static RuleEntry>,
    /// The same as `engine_settings` rows, built once (the planner asks for thousands).
    pub settings: Vec<crate::estimate::Setting>,
}

impl Rules {
    fn resolve<'t>(t: &'t Table, r: Release) -> Result<(Rules, Vec<&'t RuleEntry>), String> {
        let mut applied = Vec::new();
        let bad = |e: &RuleEntry| t.bad_value(e);
        let mut get = |name: &str| -> Result<&'t RuleEntry, String> {
            let e = t.rule(name, r.version())?;
            applied.push(e);
            Ok(e)
        };
        let e = get("gpu_memory_utilization_default")?;
        let utilization_default = match e.value.as_str() {
            "extensible" => UtilizationDefault::Extensible,
            v => UtilizationDefault::Fixed(v.parse().map_err(|_| bad(e))?),
        };
        let e = get("kv_sizing")?;
        let kv_sizing = match e.value.as_str() {
            "profile" => KvSizing::Profile,
            "extensible" => KvSizing::Extensible,
            _ => return Err(bad(e)),
        };
        let e = get("memory_baseline")?;
        let baseline = match e.value.as_str() {
            "before_distributed_init" => Baseline::BeforeDistributedInit,
            "after_distributed_init" => Baseline::AfterDistributedInit,
            _ => return Err(bad(e)),
        };
        let e = get("sampler_top_k_top_p")?;
        let top_k_top_p = match e.value.as_str() {
            "sort" => TopKTopP::Sort,
            "triton" => TopKTopP::Triton,
            _ => return Err(bad(e)),
        };
        let e = get("model_runner_v2")?;
        let mrv2 = match e.value.as_str() {
            "never" => Mrv2::Never,
            "qwen3_dense" => Mrv2::Qwen3Dense,
            "llama_mistral_qwen3_dense" => Mrv2::LlamaMistralQwen3Dense,
            "dense" => Mrv2::Dense,
            "all" => Mrv2::All,
            _ => return Err(bad(e)),
        };
        let e = get("mrv2_sampler_warmup_pass")?;
        let mrv2_warmup_pass = e.value.parse().map_err(|_| bad(e))?;
        let e = get("batch_defaults")?;
        let batch_defaults = match e.value.as_str() {
            "seqs_capped_by_tokens" => BatchDefaults::SeqsCappedByTokens,
            "tokens_capped_by_seqs_times_len" => BatchDefaults::TokensCappedBySeqsTimesLen,
            _ => return Err(bad(e)),
        };
        let e = get("batch_defaults_tiers")?;
        let batch_tiers = match e.value.as_str() {
            "70gib_not_a100" => BatchTiers::Tier70NotA100,
            "160gib_then_70gib_not_a100" => BatchTiers::Tier160Then70NotA100,
            "160gib_then_70gib_not_a100_not_gb10" => BatchTiers::Tier160Then70NotA100NotGb10,
            _ => return Err(bad(e)),
        };
        let e = get("cudagraph_profile")?;
        let cudagraph_profile = match e.value.as_str() {
            "none" => CudagraphProfile::None,
            "inside_profile" => CudagraphProfile::InsideProfile,
            "after_profile" => CudagraphProfile::AfterProfile,
            _ => return Err(bad(e)),
        };
        let e = get("cudagraph_charged")?;
        let cudagraph_charged = e.value.parse().map_err(|_| bad(e))?;
        let e = get("kv_tokens_report")?;
        let kv_tokens_report = match e.value.as_str() {
            "blocks" => KvTokensReport::Blocks,
            "concurrency" => KvTokensReport::Concurrency,
            _ => return Err(bad(e)),
        };
        let e = get("profile_log")?;
        let profile_log = match e.value.as_str() {
            "non_torch" => ProfileLog::NonTorch,
            "total_consumed" => ProfileLog::TotalConsumed,
            _ => return Err(bad(e)),
        };
        let e = get("kv_group_size")?;
        let kv_group_size = match e.value.as_str() {
            "min" => KvGroupSize::Min,
            "max_within_1_5x" => KvGroupSize::MaxWithin1_5x,
            _ => return Err(bad(e)),
        };
        let e = get("hybrid_prefix_caching")?;
        let hybrid_prefix_caching = match e.value.as_str() {
            "forced_off" => HybridPrefixCaching::ForcedOff,
            "off_by_default" => HybridPrefixCaching::OffByDefault,
            "off_by_default_modes" => HybridPrefixCaching::OffByDefaultModes,
            "on_by_default" => HybridPrefixCaching::OnByDefault,
            _ => return Err(bad(e)),
        };
        let e = get("hybrid_block_alignment")?;
        let hybrid_alignment = match e.value.as_str() {
            "16" => HybridAlignment::Sixteen,
            "backend" => HybridAlignment::Backend,
            _ => return Err(bad(e)),
        };
        let e = get("hybrid_detection")?;
        let hybrid_detection = match e.value.as_str() {
            "model_class" => HybridDetection::ModelClass,
            "layer_types" => HybridDetection::LayerTypes,
            _ => return Err(bad(e)),
        };
        let e = get("hf_ssm_cache_dtype")?;
        let hf_ssm_dtype = match e.value.as_str() {
            "none" => HfSsmDtype::None,
            "nemotron_h" => HfSsmDtype::NemotronH,
            "nemotron_h_qwen3_5" => HfSsmDtype::NemotronHQwen35,
            _ => return Err(bad(e)),
        };
        let e = get("window_in_flight_tokens")?;
        let window_in_flight = match e.value.as_str() {
            "batched" => WindowInFlight::Batched,
            "concurrent_batches" => WindowInFlight::ConcurrentBatches,
            "concurrent_batches_pp_plus_1" => WindowInFlight::ConcurrentBatchesPpPlus1,
            _ => return Err(bad(e)),
        };
        let e = get("mxfp4_triton")?;
        let mxfp4_triton = match e.value.as_str() {
            "not_bundled" => Mxfp4Triton::NotBundled,
            "bundled_scales_kept" => Mxfp4Triton::BundledScalesKept,
            "bundled_shared_storage" => Mxfp4Triton::BundledSharedStorage,
            _ => return Err(bad(e)),
        };
        Ok((
            Rules {
                utilization_default,
                kv_sizing,
                baseline,
                top_k_top_p,
                mrv2,
                mrv2_warmup_pass,
                batch_defaults,
                batch_tiers,
                cudagraph_profile,
                cudagraph_charged,
                kv_tokens_report,
                profile_log,
                kv_group_size,
                hybrid_prefix_caching,
                hybrid_alignment,
                hybrid_detection,
                hf_ssm_dtype,
                window_in_flight,
                mxfp4_triton,
                applied: Vec::new(),
                settings: Vec::new(),
            },
            applied,
        ))
    }

    /// The rules of a release of the embedded table, resolved once per minor release and per
    /// patch release a rule names as its `since`.
    pub fn of(release: Release) -> &'static Rules {
        static ALL: OnceLock<Vec<(Release, Rules)>> = OnceLock::new();
        let all = ALL.get_or_init(|| {
            let t = table();
            breakpoints(t)
                .into_iter()
                .map(|r| match Rules::resolve(t, r) {
                    Ok((mut rules, applied)) => {
                        rules.settings = applied
                            .iter()
                            .map(|e| crate::estimate::Setting {
                                name: e.name.as_str(),
                                value: e.value.clone(),
                                origin: format!("vLLM rule since {}: {}", e.since, e.source),
                            })
                            .collect();
                        rules.applied = applied;
                        (r, rules)
                    }
                    // `parse` resolved every release of the table.
                    Err(e) => panic!("{e}"),
                })
                .collect()
        });
        // The last breakpoint not after the release (releases outside the span take its ends).
        &all.iter()
            .rev()
            .find(|(r, _)| *r <= release)
            .unwrap_or(&all[0])
            .1
    }

    /// The default utilization with the release's default KV-cache sizing.
    pub fn default_utilization(&self) -> f64 {
        self.default_utilization_for(true)
    }

    /// The default utilization given whether the extensible KV cache is on (0.34: 1.0 with it,
    /// `DEFAULT_GPU_MEMORY_UTILIZATION` = 0.92 without, vllm/config/cache.py).
    pub fn default_utilization_for(&self, extensible: bool) -> f64 {
        match self.utilization_default {
            UtilizationDefault::Fixed(u) => u,
            UtilizationDefault::Extensible if extensible => 1.0,
            UtilizationDefault::Extensible => 0.92,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> Release {
        Release::parse(s).unwrap()
    }

    #[test]
    fn embedded_table_parses_and_spans_the_modelled_releases() {
        let t = table();
        assert_eq!(t.oldest, Release::OLDEST.version());
        assert_eq!(t.newest, Release::NEWEST.version());
    }

    #[test]
    fn each_rule_changes_where_the_source_says() {
        // vllm/config/cache.py: 0.9 through 0.19, 0.92 from 0.20.
        assert_eq!(Rules::of(rel("0.19.1")).default_utilization(), 0.90);
        assert_eq!(Rules::of(rel("0.20")).default_utilization(), 0.92);
        assert_eq!(
            Rules::of(rel("0.34")).utilization_default,
            UtilizationDefault::Extensible
        );
        // gpu_worker.py init_device: snapshot before the distributed init only up to 0.10.
        assert_eq!(
            Rules::of(rel("0.10.2")).baseline,
            Baseline::BeforeDistributedInit
        );
        assert_eq!(
            Rules::of(rel("0.11")).baseline,
            Baseline::AfterDistributedInit
        );
        // topk_topp_sampler.py: sort through 0.16, Triton from 0.17.
        assert_eq!(Rules::of(rel("0.16")).top_k_top_p, TopKTopP::Sort);
        assert_eq!(Rules::of(rel("0.17")).top_k_top_p, TopKTopP::Triton);
        // Graph profiling inside the profiling context 0.18–0.26; charged from 0.20.
        assert_eq!(
            Rules::of(rel("0.17")).cudagraph_profile,
            CudagraphProfile::None
        );
        assert_eq!(
            Rules::of(rel("0.26")).cudagraph_profile,
            CudagraphProfile::InsideProfile
        );
        assert_eq!(
            Rules::of(rel("0.27")).cudagraph_profile,
            CudagraphProfile::AfterProfile
        );
        assert!(!Rules::of(rel("0.19")).cudagraph_charged);
        assert!(Rules::of(rel("0.20")).cudagraph_charged);
        // kv_cache_utils.py: tokens from concurrency from 0.21.
        assert_eq!(
            Rules::of(rel("0.20")).kv_tokens_report,
            KvTokensReport::Blocks
        );
        assert_eq!(
            Rules::of(rel("0.21")).kv_tokens_report,
            KvTokensReport::Concurrency
        );
        // Model Runner V2 defaults.
        assert_eq!(Rules::of(rel("0.21")).mrv2, Mrv2::Never);
        assert_eq!(Rules::of(rel("0.22")).mrv2, Mrv2::Qwen3Dense);
        assert_eq!(Rules::of(rel("0.30")).mrv2, Mrv2::All);
        // Every rule in force is listed once.
        assert_eq!(Rules::of(rel("0.19")).applied.len(), 19);
        // ModelConfig.is_hybrid: the model class's to 0.11.0, layer_types checked from 0.11.1
        // (a patch-level rule: 0.11.0 and 0.11.2 resolve differently within one minor release).
        assert_eq!(
            Rules::of(rel("0.11.0")).hybrid_detection,
            HybridDetection::ModelClass
        );
        assert_eq!(
            Rules::of(rel("0.11.1")).hybrid_detection,
            HybridDetection::LayerTypes
        );
        assert_eq!(
            Rules::of(rel("0.11.2")).hybrid_detection,
            HybridDetection::LayerTypes
        );
        assert_eq!(
            Rules::of(rel("0.11.2")).hybrid_prefix_caching,
            HybridPrefixCaching::ForcedOff
        );
        assert_eq!(
            Rules::of(rel("0.12")).hybrid_detection,
            HybridDetection::LayerTypes
        );
        assert_eq!(
            Rules::of(rel("0.10")).hybrid_detection,
            HybridDetection::ModelClass
        );
        // Window specs reserve one batch to 0.25, the batches in flight from 0.26.
        assert_eq!(
            Rules::of(rel("0.25")).window_in_flight,
            WindowInFlight::Batched
        );
        assert_eq!(
            Rules::of(rel("0.26")).window_in_flight,
            WindowInFlight::ConcurrentBatches
        );
        assert_eq!(
            Rules::of(rel("0.34")).window_in_flight,
            WindowInFlight::ConcurrentBatchesPpPlus1
        );
        // Hybrid models: prefix caching forced off to 0.11, off by default to 0.25, on from
        // 0.26 (config.py MambaModelConfig; config/model.py is_prefix_caching_supported).
        assert_eq!(
            Rules::of(rel("0.11")).hybrid_prefix_caching,
            HybridPrefixCaching::ForcedOff
        );
        assert_eq!(
            Rules::of(rel("0.14")).hybrid_prefix_caching,
            HybridPrefixCaching::OffByDefault
        );
        assert_eq!(
            Rules::of(rel("0.19")).hybrid_prefix_caching,
            HybridPrefixCaching::OffByDefaultModes
        );
        assert_eq!(
            Rules::of(rel("0.26")).hybrid_prefix_caching,
            HybridPrefixCaching::OnByDefault
        );
        assert_eq!(
            Rules::of(rel("0.11")).hybrid_alignment,
            HybridAlignment::Sixteen
        );
        assert_eq!(
            Rules::of(rel("0.12")).hybrid_alignment,
            HybridAlignment::Backend
        );
        assert_eq!(Rules::of(rel("0.12")).hf_ssm_dtype, HfSsmDtype::None);
        assert_eq!(Rules::of(rel("0.13")).hf_ssm_dtype, HfSsmDtype::NemotronH);
        assert_eq!(
            Rules::of(rel("0.17")).hf_ssm_dtype,
            HfSsmDtype::NemotronHQwen35
        );
    }

    #[test]
    fn a_bad_value_is_refused_with_the_rule_named() {
        let text = FILE.replacen("value = \"sort\"", "value = \"quicksort\"", 1);
        let e = parse(&text).unwrap_err();
        assert!(
            e.contains("sampler_top_k_top_p") && e.contains("quicksort"),
            "{e}"
        );
    }

    #[test]
    fn constants_name_their_records() {
        let t = table();
        for c in &t.constants {
            assert!(!c.source.is_empty() && !c.what.is_empty(), "{}", c.name);
        }
        // The sampler residue was read on 0.19 and checked on 0.11, 0.15 and 0.17 records.
        let s = t.constant_entry("sampler_residue_mib").unwrap();
        assert!(!s.records.is_empty() && !s.checked_on.is_empty());
        assert_eq!(t.constant("sampler_residue_mib"), 48 << 20);
    }
}
