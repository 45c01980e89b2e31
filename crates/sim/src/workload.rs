//! Requests to simulate: the built-in ShareGPT-like and Alpaca-like length distributions
//! with Poisson arrivals, or a trace file (CSV or JSONL).
//!
//! The built-in distributions are log-normal, fitted to the only statistics the PagedAttention
//! paper prints (Kwon et al., SOSP 2023, §6.1 and Fig. 11): mean input/output lengths of
//! 161.31/337.99 tokens for ShareGPT and 19.31/58.45 for Alpaca, ShareGPT having the higher
//! variance. The histograms themselves are images, so the shape parameter sigma is ours; see
//! [`LengthDistribution::sigmas`] for how it was chosen.

use crate::error::SimError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Most parallel samples or beams one request may ask for.
pub const MAX_SEQS_PER_REQUEST: u16 = 256;
/// Most requests a synthetic workload may generate. They are streamed
/// ([`SyntheticWorkload::stream`]): the simulator's memory does not grow with their number.
pub const MAX_SYNTHETIC_REQUESTS: u64 = 50_000_000;
/// Latest arrival time, in seconds: 10^9 s, ~32 years of simulated serving. Beyond it the
/// run's duration would swamp the f64 sums of step times (a trace row at 10^308 s made every
/// memory share NaN).
pub const MAX_ARRIVAL_S: f64 = 1e9;

/// A prompt prefix shared by several requests (e.g. a few-shot header), cached as whole
/// blocks by the `paged-sharing` allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedPrefix {
    /// Dense id (0, 1, 2, ...) of the prefix; traces map their ids to these.
    pub id: u32,
    /// Tokens of the prompt that are the shared prefix (<= prompt_tokens).
    pub tokens: u32,
}

/// One request as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Arrival time in seconds from the start of the run.
    pub arrival_s: f64,
    /// Prompt length in tokens (>= 1).
    pub prompt_tokens: u32,
    /// Tokens each sequence of the request generates (>= 1).
    pub output_tokens: u32,
    /// Parallel samples generated from the prompt (1 = plain sampling).
    pub parallel_samples: u16,
    /// Beam-search width (1 = no beam search). Not combined with parallel samples.
    pub beam_width: u16,
    /// A prefix shared with other requests, if any.
    pub prefix: Option<SharedPrefix>,
}

impl Request {
    /// Sequences that decode in parallel for this request (samples or beams).
    pub fn num_seqs(&self) -> u32 {
        u32::from(self.parallel_samples.max(self.beam_width).max(1))
    }

    /// Tokens each sequence holds when it finishes.
    pub fn final_len(&self) -> u32 {
        self.prompt_tokens.saturating_add(self.output_tokens)
    }
}

/// Built-in request-length distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LengthDistribution {
    /// ShareGPT conversations: mean input 161.31, output 337.99 tokens (paper Fig. 11a).
    ShareGpt,
    /// Alpaca instructions: mean input 19.31, output 58.45 tokens (paper Fig. 11b).
    Alpaca,
}

impl LengthDistribution {
    /// Parses the CLI names `sharegpt` and `alpaca`.
    pub fn from_name(name: &str) -> Option<LengthDistribution> {
        match name.to_ascii_lowercase().as_str() {
            "sharegpt" => Some(LengthDistribution::ShareGpt),
            "alpaca" => Some(LengthDistribution::Alpaca),
            _ => None,
        }
    }

    /// Published mean (input, output) lengths in tokens (paper §6.1, Fig. 11).
    pub fn published_means(self) -> (f64, f64) {
        match self {
            LengthDistribution::ShareGpt => (161.31, 337.99),
            LengthDistribution::Alpaca => (19.31, 58.45),
        }
    }

    /// Log-normal shape (sigma of ln length) for (input, output).
    ///
    /// The paper prints only means. For ShareGPT the output sigma is the one free parameter we
    /// fitted to the paper: Orca (Max) always holds floor(15,728 / 2048) = 7 requests, so its
    /// token-states + reservation share in Fig. 2 (20.4 + 13.3 = 33.7% of 15,728 slots) pins the
    /// time-weighted final length of a running request at about 757 tokens, which is
    /// `E(in) + E(out²) / E(out) = 161 + 338·exp(sigma²)` before clipping, i.e. sigma ≈ 0.75–0.8
    /// once clipping to 2048 is accounted for. Input sigma 1.0 gives ShareGPT's prompts the
    /// long tail of pasted text. Alpaca is "lower variance" (paper §6.1): 0.6 for both.
    pub fn sigmas(self) -> (f64, f64) {
        match self {
            LengthDistribution::ShareGpt => (1.0, 0.8),
            LengthDistribution::Alpaca => (0.6, 0.6),
        }
    }
}

/// A synthetic workload: lengths from a built-in distribution, Poisson arrivals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticWorkload {
    /// Length distribution.
    pub lengths: LengthDistribution,
    /// Mean arrival rate in requests/s (Poisson process).
    pub rate: f64,
    /// Number of requests.
    pub requests: u64,
    /// Parallel samples per request (1 = none).
    pub parallel_samples: u16,
    /// Beam width per request (1 = none).
    pub beam_width: u16,
    /// RNG seed: the same seed gives the same requests.
    pub seed: u64,
}

impl SyntheticWorkload {
    /// Draws the requests. Lengths are rounded, at least 1 token, and clipped so that
    /// prompt + output <= `max_seq_len` (the paper truncates to the model's context).
    pub fn generate(&self, max_seq_len: u32) -> Result<Vec<Request>, SimError> {
        let stream = self.stream(max_seq_len)?;
        let out: Vec<Request> = stream.collect();
        if out.last().is_some_and(|r| r.arrival_s > MAX_ARRIVAL_S) {
            return Err(SimError::InvalidWorkload(format!(
                "the last arrival comes after {MAX_ARRIVAL_S:e} s: raise the rate"
            )));
        }
        Ok(out)
    }

    /// The same requests as [`SyntheticWorkload::generate`], drawn one at a time: a cloneable
    /// iterator, so a run of any length keeps none of them in memory.
    pub fn stream(&self, max_seq_len: u32) -> Result<SyntheticStream, SimError> {
        let bad = |m: String| Err(SimError::InvalidWorkload(m));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad(format!(
                "rate must be a positive number of requests/s, got {}",
                self.rate
            ));
        }
        if self.requests == 0 || self.requests > MAX_SYNTHETIC_REQUESTS {
            return bad(format!(
                "requests must be in 1..={MAX_SYNTHETIC_REQUESTS}, got {}",
                self.requests
            ));
        }
        // The expected last arrival is requests / rate; half the bound leaves room for chance.
        if self.requests as f64 / self.rate > MAX_ARRIVAL_S / 2.0 {
            return bad(format!(
                "{} requests at {} requests/s arrive over {:.3e} s, beyond the {:e} s a run may span: raise the rate",
                self.requests,
                self.rate,
                self.requests as f64 / self.rate,
                MAX_ARRIVAL_S
            ));
        }
        check_seqs(self.parallel_samples, self.beam_width).map_err(SimError::InvalidWorkload)?;
        if max_seq_len < 2 {
            return bad(format!("max_seq_len must be >= 2, got {max_seq_len}"));
        }
        let (mean_in, mean_out) = self.lengths.published_means();
        let (sigma_in, sigma_out) = self.lengths.sigmas();
        // A log-normal with mean m and shape s has mu = ln m - s²/2.
        let prompt_dist = LogNormal::new(mean_in.ln() - sigma_in * sigma_in / 2.0, sigma_in)
            .expect("constant parameters are valid");
        let output_dist = LogNormal::new(mean_out.ln() - sigma_out * sigma_out / 2.0, sigma_out)
            .expect("constant parameters are valid");
        Ok(SyntheticStream {
            rng: ChaCha8Rng::seed_from_u64(self.seed),
            prompt_dist,
            output_dist,
            gap_dist: Exp::new(self.rate).expect("rate checked positive"),
            t: 0.0,
            left: self.requests,
            max_seq_len,
            parallel_samples: self.parallel_samples.max(1),
            beam_width: self.beam_width.max(1),
        })
    }
}

/// The requests of a [`SyntheticWorkload`], drawn as they are read; cloning it replays the
/// rest of the same sequence (the RNG state is copied).
#[derive(Debug, Clone)]
pub struct SyntheticStream {
    rng: ChaCha8Rng,
    prompt_dist: LogNormal<f64>,
    output_dist: LogNormal<f64>,
    gap_dist: Exp<f64>,
    t: f64,
    left: u64,
    max_seq_len: u32,
    parallel_samples: u16,
    beam_width: u16,
}

impl Iterator for SyntheticStream {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let max_prompt = f64::from(self.max_seq_len - 1);
        self.t += self.gap_dist.sample(&mut self.rng);
        let prompt = self
            .prompt_dist
            .sample(&mut self.rng)
            .round()
            .clamp(1.0, max_prompt) as u32;
        let max_out = f64::from(self.max_seq_len - prompt);
        let output = self
            .output_dist
            .sample(&mut self.rng)
            .round()
            .clamp(1.0, max_out) as u32;
        Some(Request {
            arrival_s: self.t,
            prompt_tokens: prompt,
            output_tokens: output,
            parallel_samples: self.parallel_samples,
            beam_width: self.beam_width,
            prefix: None,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.left).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

fn check_seqs(n: u16, beam: u16) -> Result<(), String> {
    if n > MAX_SEQS_PER_REQUEST || beam > MAX_SEQS_PER_REQUEST {
        return Err(format!(
            "parallel samples and beam width must be <= {MAX_SEQS_PER_REQUEST}"
        ));
    }
    if n > 1 && beam > 1 {
        return Err("a request uses either parallel samples or beam search, not both".into());
    }
    Ok(())
}

/// Trace file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// Comma-separated with a header row naming the columns.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Reads a trace file, picking the format from the extension (`.csv`, `.jsonl`/`.ndjson`).
pub fn load_trace(path: &Path) -> Result<Vec<Request>, SimError> {
    let source_name = path.display().to_string();
    let format = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("csv") => TraceFormat::Csv,
        Some("jsonl") | Some("ndjson") => TraceFormat::Jsonl,
        _ => {
            return Err(SimError::Trace {
                source_name,
                message: "unknown trace format: use a .csv or .jsonl file".into(),
            })
        }
    };
    // Only a regular file: a FIFO or a device would block or never end (issue 11).
    let meta = std::fs::metadata(path).map_err(|e| SimError::Trace {
        source_name: source_name.clone(),
        message: format!("cannot read: {e}"),
    })?;
    if !meta.is_file() {
        return Err(SimError::Trace {
            source_name,
            message: "not a regular file: give a .csv or .jsonl trace file".into(),
        });
    }
    let file = std::fs::File::open(path).map_err(|e| SimError::Trace {
        source_name: source_name.clone(),
        message: format!("cannot read: {e}"),
    })?;
    // Read as a stream of rows: memory holds the parsed requests (32 bytes each), never the
    // file's text, and one line at most MAX_TRACE_LINE_BYTES.
    read_trace(std::io::BufReader::new(file), format, &source_name)
}

/// Longest trace line read: a row is a few numbers and a prefix id (under 200 bytes); a
/// longer line is refused before it is buffered whole.
pub const MAX_TRACE_LINE_BYTES: u64 = 64 * 1024;

/// One trace row before validation (all optional so missing columns get a clear message).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    #[serde(alias = "arrival", alias = "arrival_time")]
    arrival_s: Option<f64>,
    #[serde(alias = "prompt", alias = "input_tokens")]
    prompt_tokens: Option<u32>,
    #[serde(alias = "output", alias = "max_tokens")]
    output_tokens: Option<u32>,
    #[serde(alias = "parallel_samples")]
    n: Option<u16>,
    #[serde(alias = "beam")]
    beam_width: Option<u16>,
    prefix_id: Option<serde_json::Value>,
    #[serde(alias = "prefix_len", alias = "prefix_length")]
    prefix_tokens: Option<u32>,
}

/// Parses a trace. Columns/keys: `arrival_s`, `prompt_tokens`, `output_tokens` (required);
/// `n`, `beam_width`, `prefix_id`, `prefix_tokens` (optional). Rows are sorted by arrival
/// (stable). Any bad row is a one-line error naming its line.
pub fn parse_trace(
    text: &str,
    format: TraceFormat,
    source_name: &str,
) -> Result<Vec<Request>, SimError> {
    read_trace(text.as_bytes(), format, source_name)
}

/// [`parse_trace`] over any reader, one row at a time: what [`load_trace`] uses on a file.
pub fn read_trace(
    input: impl std::io::BufRead,
    format: TraceFormat,
    source_name: &str,
) -> Result<Vec<Request>, SimError> {
    let mut prefixes = PrefixIds::default();
    let mut out = Vec::new();
    let too_many = || SimError::Trace {
        source_name: source_name.to_string(),
        message: format!(
            "more than {MAX_SYNTHETIC_REQUESTS} requests: split the trace or sample it"
        ),
    };
    match format {
        TraceFormat::Csv => parse_csv(input, source_name, &mut prefixes, &mut out)?,
        TraceFormat::Jsonl => {
            let mut input = input;
            let mut line = String::new();
            let mut line_no = 0u64;
            loop {
                line.clear();
                line_no += 1;
                let n = std::io::BufRead::read_line(
                    &mut std::io::Read::take(&mut input, MAX_TRACE_LINE_BYTES + 1),
                    &mut line,
                )
                .map_err(|e| SimError::TraceRow {
                    source_name: source_name.to_string(),
                    line: line_no,
                    message: format!("cannot read: {e}"),
                })?;
                if n == 0 {
                    break;
                }
                if n as u64 > MAX_TRACE_LINE_BYTES {
                    return Err(SimError::TraceRow {
                        source_name: source_name.to_string(),
                        line: line_no,
                        message: format!(
                            "line longer than {MAX_TRACE_LINE_BYTES} bytes: a row is one JSON object of a few numbers"
                        ),
                    });
                }
                let trimmed = line.trim();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                let raw: RawRow =
                    serde_json::from_str(trimmed).map_err(|e| SimError::TraceRow {
                        source_name: source_name.to_string(),
                        line: line_no,
                        message: strip_position(&e.to_string()),
                    })?;
                if out.len() as u64 >= MAX_SYNTHETIC_REQUESTS {
                    return Err(too_many());
                }
                out.push(validate_row(raw, &mut prefixes).map_err(|message| {
                    SimError::TraceRow {
                        source_name: source_name.to_string(),
                        line: line_no,
                        message,
                    }
                })?);
            }
        }
    }
    if out.len() as u64 > MAX_SYNTHETIC_REQUESTS {
        return Err(too_many());
    }
    if out.is_empty() {
        return Err(SimError::Trace {
            source_name: source_name.to_string(),
            message: "no requests in trace".into(),
        });
    }
    out.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    Ok(out)
}

/// serde_json appends " at line 1 column N"; on a one-object line only the column helps.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(pos) => {
            let col = msg[pos..].rsplit(' ').next().unwrap_or("");
            format!("{} (column {col})", &msg[..pos])
        }
        None => msg.to_string(),
    }
}

fn parse_csv(
    input: impl std::io::Read,
    source_name: &str,
    prefixes: &mut PrefixIds,
    out: &mut Vec<Request>,
) -> Result<(), SimError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(LineCapped {
            inner: input,
            since_newline: 0,
        });
    let headers = reader
        .headers()
        .map_err(|e| SimError::Trace {
            source_name: source_name.to_string(),
            message: format!("cannot read header: {e}"),
        })?
        .clone();
    // Map header names (with the same aliases as JSONL) to columns.
    let mut col: [Option<usize>; 7] = [None; 7];
    for (i, h) in headers.iter().enumerate() {
        let slot = match h.to_ascii_lowercase().as_str() {
            "arrival_s" | "arrival" | "arrival_time" => 0,
            "prompt_tokens" | "prompt" | "input_tokens" => 1,
            "output_tokens" | "output" | "max_tokens" => 2,
            "n" | "parallel_samples" => 3,
            "beam_width" | "beam" => 4,
            "prefix_id" => 5,
            "prefix_tokens" | "prefix_len" | "prefix_length" => 6,
            other => {
                return Err(SimError::TraceRow {
                    source_name: source_name.to_string(),
                    line: 1,
                    message: format!("unknown column `{other}`"),
                })
            }
        };
        col[slot] = Some(i);
    }
    for record in reader.records() {
        // The csv crate buffers one record at a time; a row is bounded like a JSONL line.
        if out.len() as u64 >= MAX_SYNTHETIC_REQUESTS {
            return Err(SimError::Trace {
                source_name: source_name.to_string(),
                message: format!(
                    "more than {MAX_SYNTHETIC_REQUESTS} requests: split the trace or sample it"
                ),
            });
        }
        let record = record.map_err(|e| SimError::TraceRow {
            source_name: source_name.to_string(),
            line: e.position().map(|p| p.line()).unwrap_or(0),
            message: e.to_string(),
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let row_err = |message: String| SimError::TraceRow {
            source_name: source_name.to_string(),
            line,
            message,
        };
        let field = |slot: usize| -> Option<&str> {
            col[slot]
                .and_then(|i| record.get(i))
                .filter(|s| !s.is_empty())
        };
        fn num<T: std::str::FromStr>(v: Option<&str>, name: &str) -> Result<Option<T>, String>
        where
            T::Err: std::fmt::Display,
        {
            v.map(|s| s.parse::<T>().map_err(|e| format!("{name} `{s}`: {e}")))
                .transpose()
        }
        let raw = RawRow {
            arrival_s: num(field(0), "arrival_s").map_err(row_err)?,
            prompt_tokens: num(field(1), "prompt_tokens").map_err(row_err)?,
            output_tokens: num(field(2), "output_tokens").map_err(row_err)?,
            n: num(field(3), "n").map_err(row_err)?,
            beam_width: num(field(4), "beam_width").map_err(row_err)?,
            prefix_id: field(5).map(|s| serde_json::Value::String(s.to_string())),
            prefix_tokens: num(field(6), "prefix_tokens").map_err(row_err)?,
        };
        out.push(validate_row(raw, prefixes).map_err(row_err)?);
    }
    Ok(())
}

/// A reader that fails once a line runs past [`MAX_TRACE_LINE_BYTES`]: the csv crate grows its
/// record buffer to fit any field, so the bound on one row is kept here, before it buffers.
struct LineCapped<R> {
    inner: R,
    since_newline: u64,
}

impl<R: std::io::Read> std::io::Read for LineCapped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            self.since_newline = if b == b'\n' {
                0
            } else {
                self.since_newline + 1
            };
            if self.since_newline > MAX_TRACE_LINE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a line longer than {MAX_TRACE_LINE_BYTES} bytes"),
                ));
            }
        }
        Ok(n)
    }
}

/// Maps trace prefix ids (any string or number) to dense ids and remembers their lengths.
#[derive(Default)]
struct PrefixIds {
    ids: HashMap<String, (u32, u32)>,
}

fn validate_row(raw: RawRow, prefixes: &mut PrefixIds) -> Result<Request, String> {
    let arrival = raw.arrival_s.ok_or("missing arrival_s")?;
    if !(arrival.is_finite() && (0.0..=MAX_ARRIVAL_S).contains(&arrival)) {
        return Err(format!(
            "arrival_s must be a number of seconds from 0 to {MAX_ARRIVAL_S:e}, got {}",
            // As written in the trace: 1e308, not 309 digits.
            if arrival.abs() < 1e15 {
                arrival.to_string()
            } else {
                format!("{arrival:e}")
            }
        ));
    }
    let prompt = raw.prompt_tokens.ok_or("missing prompt_tokens")?;
    let output = raw.output_tokens.ok_or("missing output_tokens")?;
    if prompt == 0 {
        return Err("prompt_tokens must be >= 1".into());
    }
    if output == 0 {
        return Err("output_tokens must be >= 1".into());
    }
    let n = raw.n.unwrap_or(1);
    let beam = raw.beam_width.unwrap_or(1);
    if n == 0 || beam == 0 {
        return Err("n and beam_width must be >= 1".into());
    }
    check_seqs(n, beam)?;
    let prefix = match (raw.prefix_id, raw.prefix_tokens) {
        (None, None) => None,
        (None, Some(_)) => return Err("prefix_tokens given without prefix_id".into()),
        (Some(_), None) => return Err("prefix_id given without prefix_tokens".into()),
        (Some(id), Some(tokens)) => {
            let key = match id {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => return Err(format!("prefix_id must be a string or number, got {other}")),
            };
            if tokens == 0 || tokens > prompt {
                return Err(format!(
                    "prefix_tokens must be in 1..=prompt_tokens ({prompt}), got {tokens}"
                ));
            }
            let next = prefixes.ids.len() as u32;
            let (dense, known_len) = *prefixes.ids.entry(key.clone()).or_insert((next, tokens));
            if known_len != tokens {
                return Err(format!(
                    "prefix `{key}` has {tokens} tokens here but {known_len} on an earlier row"
                ));
            }
            Some(SharedPrefix { id: dense, tokens })
        }
    };
    Ok(Request {
        arrival_s: arrival,
        prompt_tokens: prompt,
        output_tokens: output,
        parallel_samples: n,
        beam_width: beam,
        prefix,
    })
}
