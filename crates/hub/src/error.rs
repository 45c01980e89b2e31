//! The one error type of this crate: a kind (what the caller may do about it) and a one-line
//! message that names the repository or URL and says what to do.

use vramplan_formats::FormatError;

/// What kind of failure, for the caller's exit code and follow-ups (a 404 also lists the
/// nearest catalogue names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The repository, revision, file or registry model does not exist.
    NotFound,
    /// The repository is gated or private and the token (if any) does not give access.
    Denied,
    /// Bad input: a malformed name, an ambiguous GGUF repository without a tag.
    Input,
    /// `--offline` (or `HF_HUB_OFFLINE=1`) and the answer is not in the cache.
    NotCached,
    /// The network or the server could not be reached.
    Unreachable,
    /// The server answered, but not usefully: 5xx after retries, timeouts, a body that breaks
    /// the protocol or a limit.
    Server,
    /// The bytes were fetched but are not a model file we can read (the reader's error).
    Format,
    /// The local cache directory could not be written (reading still worked).
    Cache,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HubError {
    pub kind: Kind,
    pub message: String,
}

impl HubError {
    pub fn new(kind: Kind, message: impl Into<String>) -> HubError {
        HubError {
            kind,
            message: one_line(&message.into()),
        }
    }

    /// Whether this is the caller's input (exit code 2) rather than the network's or the
    /// server's (exit code 1).
    pub fn is_input(&self) -> bool {
        matches!(
            self.kind,
            Kind::NotFound | Kind::Denied | Kind::Input | Kind::NotCached | Kind::Format
        )
    }
}

impl From<FormatError> for HubError {
    fn from(e: FormatError) -> HubError {
        HubError::new(Kind::Format, e.to_string())
    }
}

/// Control characters from a server (a hostile header, an error body) never break the line.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A server's text, quoted and shortened for an error line.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(160).collect();
    if s.chars().count() > 160 {
        out.push('…');
    }
    one_line(&out)
}
