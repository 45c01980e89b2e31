//! The one error type of this crate. Every message is a single line that starts with the file
//! (or the name the user gave) and says what is wrong, so the CLI can print it as is.

use std::fmt;
use std::path::Path;

/// Everything that can go wrong while reading a model file's header.
///
/// Strings that come from the file itself (tensor names, keys) are stored already escaped
/// (see [`quoted`]), so a hostile name cannot break the one-line guarantee.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The operating system refused a read or an open.
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file ends before a structure it declares.
    #[error("{file}: truncated: {what} needs {needed} bytes at offset {offset} but the file is {file_len} bytes")]
    Truncated {
        file: String,
        what: String,
        needed: u64,
        offset: u64,
        file_len: u64,
    },
    /// A count or length in the header is larger than the bytes left in the file could hold.
    #[error("{file}: {what} is {count}, but the {remaining} bytes left in the file can hold at most {max}")]
    CountTooLarge {
        file: String,
        what: String,
        count: u64,
        remaining: u64,
        max: u64,
    },
    /// A length is above one of our hard caps (chosen so memory stays bounded).
    #[error("{file}: {what} is {value}, above the limit of {cap}")]
    OverLimit {
        file: String,
        what: String,
        value: u64,
        cap: u64,
    },
    /// A GGUF tensor uses a ggml type id this reader does not know (or one ggml removed).
    #[error("{file}: tensor {tensor} has unknown ggml type id {type_id}{detail}")]
    UnknownTensorType {
        file: String,
        tensor: String,
        type_id: u32,
        detail: String,
    },
    /// A tensor's data lies (partly) outside the data section.
    #[error("{file}: tensor {tensor} has data offset {offset} (+{nbytes} bytes) beyond the end of the file (data section {data_size} bytes, file {file_len} bytes)")]
    TensorOutOfRange {
        file: String,
        tensor: String,
        offset: u64,
        nbytes: u64,
        data_size: u64,
        file_len: u64,
    },
    /// Two tensors claim the same bytes.
    #[error("{file}: tensors {first} and {second} overlap: {first} spans bytes {first_start}..{first_end} of the data section, {second} starts at {second_start}")]
    TensorOverlap {
        file: String,
        first: String,
        second: String,
        first_start: u64,
        first_end: u64,
        second_start: u64,
    },
    /// A FIFO, device, socket or directory where a model file was expected: never opened.
    #[error("{file}: {kind}")]
    NotRegularFile { file: String, kind: String },
    /// The header is structurally wrong in a way the other variants do not name.
    #[error("{file}: {message}")]
    Malformed { file: String, message: String },
    /// A JSON document (safetensors header, config.json, index, manifest) does not parse.
    #[error("{file}: invalid JSON: {message}")]
    Json { file: String, message: String },
    /// A required config.json field is absent.
    #[error("{file}: missing required field '{field}'{alternatives}")]
    MissingField {
        file: String,
        field: String,
        alternatives: String,
    },
    /// A config.json field has the wrong JSON type or an impossible value.
    #[error("{file}: field '{field}' must be {expected}, found {found}")]
    WrongFieldType {
        file: String,
        field: String,
        expected: String,
        found: String,
    },
    /// A config.json (or the config a GGUF header stands for) that the architecture mapping
    /// refuses: the field at fault, when there is one, and the one-line reason.
    #[error("{file}: {message}")]
    Architecture {
        file: String,
        field: Option<String>,
        message: String,
    },
    /// The bytes are not any format we read.
    #[error("{file}: not a model file we can read: {reason}")]
    UnknownFormat { file: String, reason: String },
    /// A path, ollama name or store entry does not exist, or names more than one model.
    #[error("{target}: {message}")]
    NotFound { target: String, message: String },
}

impl FormatError {
    pub(crate) fn io(file: &str, source: std::io::Error) -> Self {
        // io::Error's Display is one line; keep it.
        FormatError::Io {
            file: file.to_string(),
            source,
        }
    }

    pub(crate) fn malformed(file: &str, message: impl Into<String>) -> Self {
        FormatError::Malformed {
            file: file.to_string(),
            message: one_line(&message.into()),
        }
    }

    /// The mapping's refusal of a config, for the file it came from.
    pub fn architecture(file: &str, e: vramplan_core::arch::ArchError) -> Self {
        FormatError::Architecture {
            file: file.to_string(),
            field: e.field.map(|f| one_line(&f)),
            message: one_line(&e.message),
        }
    }

    pub(crate) fn json(file: &str, err: impl fmt::Display) -> Self {
        FormatError::Json {
            file: file.to_string(),
            message: one_line(&err.to_string()),
        }
    }

    pub(crate) fn not_found(target: &str, message: impl Into<String>) -> Self {
        FormatError::NotFound {
            target: one_line(target),
            message: one_line(&message.into()),
        }
    }
}

/// A tensor the list would not take, as the error line of the file that held it.
pub(crate) fn over_limit(file: &str, limit: &crate::tensors::TensorLimit) -> FormatError {
    let (what, value, cap) = limit.describe();
    FormatError::OverLimit {
        file: file.to_string(),
        what,
        value,
        cap,
    }
}

/// A string from the file, quoted and with control characters escaped, for error messages.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(200) + 2);
    out.push('\'');
    // Cap what we echo back: a 64 KiB key in an error line helps nobody.
    for (i, c) in s.chars().enumerate() {
        if i >= 120 {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('\'');
    out
}

/// Replace line breaks and other control characters so a message stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// How a path is shown at the start of an error line.
pub(crate) fn show_path(path: &Path) -> String {
    one_line(&path.display().to_string())
}
