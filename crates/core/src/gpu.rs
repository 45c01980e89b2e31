//! Accelerators: memory as the runtime reports it, bandwidth and throughput, from datasheets
//! and logs (data/gpus.toml, each entry with its source).

use serde::{Deserialize, Serialize};
use std::fmt;

/// How the GPUs of one server talk to each other, which decides the collective-communication
/// buffers of a model split across them (NCCL's NVLink SHARP buffers need an NVSwitch fabric and
/// compute capability 9.0; vLLM's custom all-reduce needs NVLink between every pair beyond two
/// GPUs, vllm/distributed/device_communicators/custom_all_reduce.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Interconnect {
    /// Every GPU reaches every other through NVSwitch (HGX/DGX boards, NVL72 racks).
    Nvswitch,
    /// NVLink between pairs or a mesh without a switch (bridges, DGX-1 hybrid cube mesh).
    Nvlink,
    /// PCIe only (no peer NVLink).
    #[default]
    Pcie,
    /// AMD Infinity Fabric (xGMI) between the GPUs of a node.
    Xgmi,
    /// One device sharing memory with the CPU (Apple silicon): no multi-GPU split.
    Unified,
}

impl Interconnect {
    pub fn parse(text: &str) -> Result<Interconnect, String> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "nvswitch" => Ok(Interconnect::Nvswitch),
            "nvlink" => Ok(Interconnect::Nvlink),
            "pcie" | "pci" => Ok(Interconnect::Pcie),
            "xgmi" | "infinityfabric" => Ok(Interconnect::Xgmi),
            "unified" => Ok(Interconnect::Unified),
            _ => Err(format!(
                "unknown interconnect '{text}'; use nvswitch, nvlink, pcie, xgmi or unified"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Interconnect::Nvswitch => "nvswitch",
            Interconnect::Nvlink => "nvlink",
            Interconnect::Pcie => "pcie",
            Interconnect::Xgmi => "xgmi",
            Interconnect::Unified => "unified",
        }
    }
}

impl fmt::Display for Interconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    /// GPU-to-GPU link of the usual multi-GPU server for this card.
    #[serde(default)]
    pub interconnect: Interconnect,
    /// CUDA compute capability ("9.0"); empty for non-NVIDIA devices.
    #[serde(default)]
    pub compute_capability: String,
    /// Streaming multiprocessors (NVIDIA) or compute units (AMD); 0 when unknown.
    #[serde(default)]
    pub sm_count: u64,
    /// `nvidia-smi --query-gpu=memory.total` in MiB (what SGLang sizes its defaults by); 0 when
    /// unknown (then the runtime total in MiB is used).
    #[serde(default)]
    pub smi_memory_mib: u64,
    /// Where interconnect, compute capability, SM count and nvidia-smi memory come from.
    #[serde(default)]
    pub topology_source: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub notes: String,
}

impl Gpu {
    /// Compute capability as (major, minor); None when unknown.
    pub fn capability(&self) -> Option<(u32, u32)> {
        let (a, b) = self.compute_capability.split_once('.')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    }

    /// NCCL's NVLink SHARP (NVLS) collectives: an NVSwitch fabric and Hopper or newer.
    pub fn has_nvls(&self) -> bool {
        self.interconnect == Interconnect::Nvswitch && self.capability().is_some_and(|c| c.0 >= 9)
    }

    /// The memory SGLang reads from nvidia-smi, in MiB (its default `--mem-fraction-static` and
    /// chunked-prefill tiers use it): the catalogue's value, else the runtime total.
    pub fn smi_mib(&self) -> u64 {
        if self.smi_memory_mib > 0 {
            self.smi_memory_mib
        } else {
            self.memory_bytes >> 20
        }
    }

    /// Whether the device name contains `needle` (case-insensitive), as torch reports it.
    pub fn name_contains(&self, needle: &str) -> bool {
        let n = needle.to_ascii_lowercase();
        self.name.to_ascii_lowercase().contains(&n)
            || self.id.to_ascii_lowercase().contains(&n)
            || self
                .smi_names
                .iter()
                .any(|s| s.to_ascii_lowercase().contains(&n))
    }

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
            interconnect: Interconnect::Pcie,
            compute_capability: String::new(),
            sm_count: 0,
            smi_memory_mib: 0,
            topology_source: String::new(),
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
