//! Accelerators: memory as the runtime reports it, bandwidth and throughput, from datasheets
//! and logs (data/gpus.toml, each entry with its source).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub smi_names: Vec<String>,
    #[serde(default)]
    pub vendor: String,
    /// Total memory as CUDA/ROCm reports it (cudaMemGetInfo total), bytes.
    pub memory_bytes: u64,
    #[serde(default)]
    pub memory_source: String,
    #[serde(default)]
    pub marketed_memory: String,
    pub hbm_bandwidth_bytes_per_s: f64,
    pub bf16_dense_tflops: f64,
    #[serde(default)]
    pub fp8_dense_tflops: f64,
    #[serde(default)]
    pub host_link_bytes_per_s: f64,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub notes: String,
}

impl Gpu {
    /// A GPU of a given size only (`--gpu-memory 24GiB`): no bandwidth or throughput known.
    pub fn custom(memory_bytes: u64) -> Gpu {
        Gpu {
            id: "custom".into(),
            name: format!("custom GPU with {}", crate::units::gib(memory_bytes)),
            aliases: vec![],
            smi_names: vec![],
            vendor: String::new(),
            memory_bytes,
            memory_source: "--gpu-memory".into(),
            marketed_memory: String::new(),
            hbm_bandwidth_bytes_per_s: 0.0,
            bf16_dense_tflops: 0.0,
            fp8_dense_tflops: 0.0,
            host_link_bytes_per_s: 0.0,
            source: "given on the command line".into(),
            notes: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub gpu: String,
    pub usd_per_hour: f64,
    pub provider: String,
    pub date: String,
    pub source: String,
    #[serde(default)]
    pub notes: String,
}
