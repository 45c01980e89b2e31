//! Engine profiles: each engine decides how much memory goes to activations, runtime overhead
//! and KV cache. One file per engine; every engine-specific rule lives in its file, citing the
//! engine source it follows.

pub mod generic;
pub mod llamacpp;
pub mod ollama;
pub mod sglang;
pub mod vllm;

use std::fmt;

/// The serving engines vramplan models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Generic,
    Vllm,
    LlamaCpp,
    Ollama,
    Sglang,
}

impl EngineKind {
    pub const ALL: [EngineKind; 5] = [
        EngineKind::Generic,
        EngineKind::Vllm,
        EngineKind::LlamaCpp,
        EngineKind::Ollama,
        EngineKind::Sglang,
    ];

    pub fn parse(text: &str) -> Result<EngineKind, String> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', '.'], "")
            .as_str()
        {
            "generic" | "none" => Ok(EngineKind::Generic),
            "vllm" => Ok(EngineKind::Vllm),
            "llamacpp" | "llama" | "llamaserver" => Ok(EngineKind::LlamaCpp),
            "ollama" => Ok(EngineKind::Ollama),
            "sglang" => Ok(EngineKind::Sglang),
            _ => Err(format!(
                "unknown engine '{text}'; use one of generic, vllm, llamacpp, ollama, sglang"
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            EngineKind::Generic => "generic",
            EngineKind::Vllm => "vllm",
            EngineKind::LlamaCpp => "llamacpp",
            EngineKind::Ollama => "ollama",
            EngineKind::Sglang => "sglang",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
