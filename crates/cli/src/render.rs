//! Text rendering shared by the commands: labelled rows and aligned columns. Figures always
//! name their unit (GB and GiB), via vramplan_core::units.

use std::fmt::Write;
use std::io::Write as _;

/// Writes a command's output to standard output. A closed pipe (`vramplan plan | head`) ends
/// the program quietly, as command-line tools do, instead of panicking as `print!` would.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Rows of `label  value  detail`, labels padded to a common width.
#[derive(Default)]
pub struct Rows {
    rows: Vec<(String, String, String)>,
}

impl Rows {
    pub fn add(&mut self, label: &str, value: impl Into<String>, detail: impl Into<String>) {
        self.rows
            .push((label.to_string(), value.into(), detail.into()));
    }
    pub fn rule(&mut self) {
        self.rows.push(("-".into(), String::new(), String::new()));
    }
    pub fn render(&self) -> String {
        let lw = self
            .rows
            .iter()
            .map(|r| r.0.chars().count())
            .max()
            .unwrap_or(0);
        // Values without a detail (the verdict) do not widen the column the details line up on.
        let vw = self
            .rows
            .iter()
            .filter(|r| !r.2.is_empty())
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (l, v, d) in &self.rows {
            if l == "-" && v.is_empty() {
                let _ = writeln!(out, "  {}", "-".repeat(lw + vw + 4));
                continue;
            }
            let line = if d.is_empty() {
                format!("  {l:<lw$}  {v}")
            } else {
                format!("  {l:<lw$}  {v:<vw$}  {d}")
            };
            let _ = writeln!(out, "{}", line.trim_end());
        }
        out
    }
}

/// A table with a header row; columns left-aligned, numeric columns right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>], right_align: &[bool]) -> String {
    let cols = header.len();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let fmt_row = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = width[i];
            if right_align.get(i).copied().unwrap_or(false) {
                let _ = write!(line, "{c:>w$}  ");
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        line.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", fmt_row(header.to_vec()));
    let _ = writeln!(
        out,
        "{}",
        width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    );
    for r in rows {
        let _ = writeln!(out, "{}", fmt_row(r.iter().map(String::as_str).collect()));
    }
    out
}
