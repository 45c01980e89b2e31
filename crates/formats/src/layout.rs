//! Which files of a model folder or repository hold the model: one rule for a local folder and
//! for a Hugging Face Hub repository's file list, so that a repository gives the same answer
//! read remotely as downloaded.
//!
//! Order: a safetensors index (`model.safetensors.index.json`, else the only
//! `*.safetensors.index.json`); else `*.safetensors` (`model.safetensors` alone when present:
//! Mistral repos also ship `consolidated.safetensors`, a copy of the same weights); else GGUF
//! files (a split set counts once, by its first part); else PyTorch pickles (`*.bin`, `*.pt`,
//! `*.pth`: never read, the model is sized from its config.json); else config.json alone.
//! Only top-level names count for safetensors, pickles and config.json (the layout
//! transformers' `from_pretrained` loads); GGUF files may sit in folders (repos that keep one
//! folder per quantization).

use crate::gguf::split_name_parts;

/// The config.json of a model folder or repository.
pub const CONFIG: &str = "config.json";
/// Files that carry a checkpoint's quantization beside config.json, read when config.json has
/// no `quantization_config`, first present wins: NVIDIA ModelOpt's (≤ 0.29; vLLM reads it in
/// vllm/transformers_utils/config.py `get_config`), AutoGPTQ's (vLLM `GPTQConfig`
/// .get_config_filenames) and AutoAWQ's (vLLM `AWQConfig.get_config_filenames`: quant_config.json,
/// quantize_config.json). Top level only, like config.json.
pub const QUANT_CONFIGS: [&str; 3] = [
    "hf_quant_config.json",
    "quantize_config.json",
    "quant_config.json",
];

/// The quantization file of a folder or repository that has `has(name)` (see [`QUANT_CONFIGS`]).
pub fn quant_config(has: impl Fn(&str) -> bool) -> Option<&'static str> {
    QUANT_CONFIGS.into_iter().find(|n| has(n))
}

/// The index transformers writes for a sharded safetensors checkpoint.
pub const INDEX: &str = "model.safetensors.index.json";

/// What holds a model's weights, by file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weights {
    /// A safetensors index: the shards are the files its weight_map names.
    Index(String),
    /// Safetensors files without an index; `skipped` others were left out (see the module).
    Safetensors { files: Vec<String>, skipped: usize },
    /// GGUF models: one name per model (a split set by its first part).
    Gguf(Vec<String>),
    /// Only PyTorch pickles, which are never read: the config.json is all there is.
    PickleOnly(Vec<String>),
    /// config.json and no weights at all.
    ConfigOnly,
    /// Nothing a model is made of.
    Nothing,
}

fn lower_ends_with(name: &str, suffix: &str) -> bool {
    name.len() >= suffix.len()
        && name.as_bytes()[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn top_level(name: &str) -> bool {
    !name.contains('/')
}

/// Whether a GGUF file name is a model rather than a side file. llama.cpp's own rule
/// (common/download.cpp `gguf_filename_is_model`, ggml-org/llama.cpp 0216dab): names holding
/// `mmproj` (vision projector), `imatrix`, `mtp-`, `eagle3-`, `dflash-` or `dspark-` are not.
pub fn gguf_is_model(path: &str) -> bool {
    if !lower_ends_with(path, ".gguf") {
        return false;
    }
    let file = path.rsplit('/').next().unwrap_or(path);
    ["mmproj", "imatrix", "mtp-", "eagle3-", "dflash-", "dspark-"]
        .iter()
        .all(|side| !file.contains(side))
}

/// The distinct GGUF models among `names`: a split set once, by its first part.
pub fn gguf_models(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| gguf_is_model(n))
        .filter(|n| {
            let file = n.rsplit('/').next().unwrap_or(n);
            !matches!(split_name_parts(file), Some((_, part, _)) if part != 1)
        })
        .cloned()
        .collect()
}

/// Chooses the files that hold the model among `names` (sorted or not; see the module).
pub fn choose(names: &[String]) -> Weights {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    let top: Vec<&String> = sorted.iter().copied().filter(|n| top_level(n)).collect();
    if top.iter().any(|n| *n == INDEX) {
        return Weights::Index(INDEX.to_string());
    }
    let indexes: Vec<&&String> = top
        .iter()
        .filter(|n| lower_ends_with(n, ".safetensors.index.json"))
        .collect();
    if let [one] = indexes.as_slice() {
        return Weights::Index((**one).clone());
    }
    let safetensors: Vec<&String> = top
        .iter()
        .copied()
        .filter(|n| lower_ends_with(n, ".safetensors"))
        .collect();
    if !safetensors.is_empty() {
        let files: Vec<String> = if top.iter().any(|n| *n == "model.safetensors") {
            vec!["model.safetensors".to_string()]
        } else {
            safetensors.iter().map(|n| (*n).clone()).collect()
        };
        let skipped = safetensors.len() - files.len();
        return Weights::Safetensors { files, skipped };
    }
    let gguf = gguf_models(names);
    if !gguf.is_empty() {
        let mut gguf = gguf;
        gguf.sort();
        return Weights::Gguf(gguf);
    }
    let pickles: Vec<String> = top
        .iter()
        .filter(|n| {
            [".bin", ".pt", ".pth"]
                .iter()
                .any(|ext| lower_ends_with(n, ext))
                && !n.starts_with("training_args")
                && !n.starts_with("optimizer")
        })
        .map(|n| (*n).clone())
        .collect();
    let has_config = top.iter().any(|n| *n == CONFIG);
    if !pickles.is_empty() && has_config {
        return Weights::PickleOnly(pickles);
    }
    if has_config {
        return Weights::ConfigOnly;
    }
    Weights::Nothing
}

/// The note that says which `.safetensors` files counted when there is no index (`place`:
/// "folder", "repository"), if one is worth saying.
pub fn safetensors_note(chosen: usize, skipped: usize, place: &str) -> Option<String> {
    if skipped > 0 {
        Some(format!(
            "read model.safetensors only; {skipped} other .safetensors file(s) in the {place} were not counted"
        ))
    } else if chosen > 1 {
        Some(format!(
            "no index file: counted all {chosen} .safetensors files"
        ))
    } else {
        None
    }
}

/// The note for a model whose weights are only PyTorch pickles.
pub fn pickle_note(files: &[String]) -> String {
    format!(
        "the weights are only in PyTorch pickle files ({}{}), which are never read: weights computed from config.json at its torch_dtype",
        files.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
        if files.len() > 3 { ", ..." } else { "" }
    )
}

/// The note for a model with a config.json and no weights files.
pub const NO_WEIGHTS_NOTE: &str =
    "no weights files (safetensors, GGUF or PyTorch): weights computed from config.json";

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_layout_rules() {
        let c = |v: &[&str]| choose(&names(v));
        assert_eq!(
            c(&["config.json", INDEX, "model-00001-of-00002.safetensors"]),
            Weights::Index(INDEX.into())
        );
        assert_eq!(
            c(&[
                "consolidated.safetensors",
                "model.safetensors",
                "config.json"
            ]),
            Weights::Safetensors {
                files: names(&["model.safetensors"]),
                skipped: 1
            }
        );
        assert_eq!(
            c(&[
                "b.gguf",
                "a-00002-of-00002.gguf",
                "a-00001-of-00002.gguf",
                "mmproj-f16.gguf"
            ]),
            Weights::Gguf(names(&["a-00001-of-00002.gguf", "b.gguf"]))
        );
        assert_eq!(
            c(&[
                "Q4_K_M/m-Q4_K_M-00001-of-00002.gguf",
                "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf"
            ]),
            Weights::Gguf(names(&["Q4_K_M/m-Q4_K_M-00001-of-00002.gguf"]))
        );
        assert_eq!(
            c(&["config.json", "pytorch_model.bin", "training_args.bin"]),
            Weights::PickleOnly(names(&["pytorch_model.bin"]))
        );
        assert_eq!(c(&["config.json", "README.md"]), Weights::ConfigOnly);
        assert_eq!(c(&["README.md", "sub/config.json"]), Weights::Nothing);
        // A safetensors file in a folder is not the model's (transformers loads the top level).
        assert_eq!(
            c(&["config.json", "onnx/model.safetensors"]),
            Weights::ConfigOnly
        );
    }
}
