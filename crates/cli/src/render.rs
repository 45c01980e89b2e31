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

/// "36 gated_deltanet, 12 full_attention" from a layer summary.
pub fn layer_kinds(s: &vramplan_core::model::LayerSummary) -> String {
    let mut kinds: Vec<(&String, &u64)> = s.kinds.iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    kinds
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A layer pattern (one letter per layer), shortened: the repeated unit and its count when the
/// pattern is one ("RRRF × 12"), with a prefix and suffix when it is almost one
/// ("F + SSSSSF × 10 + SS"), else the letters (cut at 120 with "…").
pub fn layer_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let n = chars.len();
    if n == 0 {
        return String::new();
    }
    let letters = |c: &[char]| c.iter().collect::<String>();
    // The shortest unit that, repeated, covers the longest stretch from some start (prefix up to
    // 4 layers), leaving at most a short tail.
    for unit in 1..=(n / 2).min(16) {
        for start in 0..=4.min(n) {
            let body = &chars[start..];
            let reps = body
                .chunks(unit)
                .take_while(|c| c.len() == unit && *c == &body[..unit])
                .count();
            let covered = start + reps * unit;
            if reps >= 2 && n - covered <= unit + 4 && covered * 2 >= n {
                let mut out = String::new();
                if start > 0 {
                    out.push_str(&letters(&chars[..start]));
                    out.push_str(" + ");
                }
                out.push_str(&format!("{} × {reps}", letters(&body[..unit])));
                if covered < n {
                    out.push_str(" + ");
                    out.push_str(&letters(&chars[covered..]));
                }
                return out;
            }
        }
    }
    if n > 120 {
        format!("{}…", letters(&chars[..120]))
    } else {
        letters(&chars)
    }
}

#[cfg(test)]
mod pattern_tests {
    use super::layer_pattern;

    #[test]
    fn patterns_are_shortened() {
        // Qwen3-Next: 3 linear-attention layers then a full one, 12 times.
        assert_eq!(layer_pattern(&"RRRF".repeat(12)), "RRRF × 12");
        // Llama: one kind.
        assert_eq!(layer_pattern(&"F".repeat(32)), "F × 32");
        // Gemma 3 (26 layers): 5 sliding + 1 full, 4 times, then 2 sliding.
        assert_eq!(
            layer_pattern(&("SSSSSF".repeat(4) + "SS")),
            "SSSSSF × 4 + SS"
        );
        // DeepSeek-V3: 3 dense-MLP latent layers then MoE ones; both are 'L'.
        assert_eq!(layer_pattern("L"), "L");
        assert_eq!(layer_pattern("FRM"), "FRM");
    }
}
