//! vramplan-core: the pure memory model of LLM serving.
//!
//! Owns model descriptions and their tensor inventories, precisions and quantized layouts, the
//! KV cache, the per-GPU breakdown, fit searches, parallelism, engine profiles and the embedded
//! catalogue (models, GPUs, prices, each with its source). No I/O, no printing, no CLI.

pub mod arch;
pub mod catalogue;
pub mod engine;
pub mod estimate;
pub mod fit;
pub mod ggml;
pub mod gpu;
pub mod kv;
pub mod layer;
pub mod limits;
pub mod model;
pub mod naive;
pub mod names;
pub mod parallel;
pub mod plan;
pub mod precision;
pub mod roofline;
pub mod units;

pub use catalogue::{catalogue, Catalogue};
pub use estimate::{estimate, Config, Estimate};
pub use gpu::Gpu;
pub use model::ModelDesc;
pub use parallel::Parallelism;
pub use precision::{KvDtype, WeightFormat};
