//! Engine profiles: each engine decides how much memory goes to activations, runtime overhead
//! and KV cache. One file per engine; every engine-specific rule lives in its file.

pub mod generic;
