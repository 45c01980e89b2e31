//! Names as people type them: catalogue ids compared without case or punctuation
//! (`llama3.1-8b-instruct` = `Llama-3.1-8B-Instruct`), GPU names with or without the vendor's
//! words (`RTX 4090`, `GeForce RTX 4090`, `NVIDIA GeForce RTX 4090`), and suggestions for a
//! miss ranked by the words they share before the letters they share.
//!
//! strsim supplies the string similarity (Jaro-Winkler); the word splitting and ranking are
//! ours, because what counts as a word of a model or GPU name (`3.1`, `8B`, `80GB`) is
//! specific to these names.

/// Longest query compared character by character: Jaro-Winkler is quadratic in the length, so
/// hostile input (a 10 MB `--model`) is cut before it is compared.
const MAX_QUERY: usize = 200;

/// The words of a name, lowercased: split at every character that is not a letter or digit,
/// and where letters are followed by digits (`qwen2.5` → `qwen 2 5`, `llama3` → `llama 3`), but
/// not where digits are followed by letters, so that sizes stay one word (`8b`, `80gb`, `a3b`).
pub fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_alpha = false;
    for c in name.chars().take(MAX_QUERY) {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_alpha = false;
            continue;
        }
        if c.is_ascii_digit() && prev_alpha && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_alpha = c.is_ascii_alphabetic();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The words of `query` appear in a row among the words of `text`: `llama 3` is in
/// "Meta-Llama-3.1-8B" but not in "CodeLlama-34b" (whose words are `codellama 34b`).
pub fn has_words(text: &str, query: &str) -> bool {
    let q = words(query);
    !q.is_empty() && words(text).windows(q.len()).any(|w| w == q.as_slice())
}

/// A name without case or punctuation: `Meta-Llama-3.1-8B` → `metallama318b`.
pub fn key(name: &str) -> String {
    words(name).concat()
}

/// Words GPU vendors put around the model name: `NVIDIA GeForce RTX 4090` and `RTX 4090` are
/// one card, as are `AMD Instinct MI300X` and `MI300X`, `Tesla T4` and `T4`.
const GPU_VENDOR_WORDS: &[&str] = &["nvidia", "geforce", "tesla", "amd", "instinct", "apple"];

/// A GPU name without case, punctuation or vendor words, and with memory sizes written one way
/// (`80GB`, `80G` and `80 GB` → `80g`): `NVIDIA A100 80GB` → `a10080g`.
pub fn gpu_key(name: &str) -> String {
    let ws = words(name);
    let mut out = String::new();
    let mut i = 0;
    while i < ws.len() {
        let w = &ws[i];
        if GPU_VENDOR_WORDS.contains(&w.as_str()) {
            i += 1;
            continue;
        }
        // A size: digits then "gb" or "g", or digits followed by the word "gb".
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &w[digits.len()..];
        if !digits.is_empty() && (unit == "gb" || unit == "g") {
            out.push_str(digits);
            out.push('g');
        } else if w.chars().all(|c| c.is_ascii_digit()) && ws.get(i + 1).is_some_and(|n| n == "gb")
        {
            out.push_str(w);
            out.push('g');
            i += 1;
        } else {
            out.push_str(w);
        }
        i += 1;
    }
    out
}

/// How near a candidate name is to a query, compared field by field (greater is nearer):
/// the words they share, letters-words first (a family name such as `llama` or `glm` says more
/// than a version number), a misspelt word counting by its similarity; then the Jaro-Winkler
/// similarity of the two keys.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
struct Nearness {
    named_words: f64,
    number_words: f64,
    letters: f64,
}

/// A word of the query matches a word of the name exactly, or (letters only, 4 letters or
/// more) with Jaro-Winkler similarity of at least 0.85 (`lamma` ~ `llama`, `mistrl` ~
/// `mistral`), counted by that similarity.
fn word_match(q: &str, names: &[String]) -> f64 {
    names
        .iter()
        .map(|n| {
            if n == q {
                1.0
            } else if q.len() >= 4 && q.chars().all(|c| c.is_ascii_alphabetic()) {
                let s = strsim::jaro_winkler(q, n);
                if s >= 0.85 {
                    s
                } else {
                    0.0
                }
            } else {
                0.0
            }
        })
        .fold(0.0, f64::max)
}

fn nearness(query_words: &[String], query_key: &str, name: &str) -> Nearness {
    let name_words = words(name);
    let mut named = 0.0;
    let mut numbers = 0.0;
    for q in query_words {
        let m = word_match(q, &name_words);
        if q.chars().any(|c| c.is_ascii_alphabetic()) {
            named += m;
        } else {
            numbers += m;
        }
    }
    Nearness {
        named_words: named,
        number_words: numbers,
        letters: strsim::jaro_winkler(query_key, &key(name)),
    }
}

/// Up to three `names` nearest to `query`, nearest first. Only names that share a word with
/// the query (a word with letters in it, allowing a misspelling) are suggested: a name that
/// shares nothing but a version number (`GLM-4.6` and `gemma-3-4b`) is not a likely meaning.
/// Ties keep the given order; a name given twice is listed once.
pub fn suggest<'a>(query: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    suggest_entries(query, names.map(|n| (n, vec![n])))
}

/// `suggest` over entries that have several names (an id and its aliases): each entry is as
/// near as its nearest name and is shown once, by its first name.
pub fn suggest_entries<'a>(
    query: &str,
    entries: impl Iterator<Item = (&'a str, Vec<&'a str>)>,
) -> Vec<String> {
    let query_words = words(query);
    let query_key = key(query);
    let mut scored: Vec<(Nearness, usize, &str)> = entries
        .enumerate()
        .filter_map(|(i, (shown, names))| {
            names
                .iter()
                .map(|n| nearness(&query_words, &query_key, n))
                .filter(|s| s.named_words > 0.0)
                .max_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal))
                .map(|s| (s, i, shown))
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    let mut out: Vec<String> = Vec::new();
    for (_, _, n) in scored {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
            out.push(n.to_string());
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

/// "; nearest: a, b, c" for an error message, or "" when nothing is near.
pub fn nearest_clause(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        "; no catalogue name shares a word with it".to_string()
    } else {
        format!("; nearest: {}", suggestions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_at_punctuation_and_letter_digit_boundaries() {
        assert_eq!(
            words("Qwen2.5-7B-Instruct"),
            ["qwen", "2", "5", "7b", "instruct"]
        );
        assert_eq!(words("GLM-4.6"), ["glm", "4", "6"]);
        assert_eq!(words("Kimi-VL-A3B"), ["kimi", "vl", "a", "3b"]);
        assert_eq!(key("Meta-Llama-3.1-8B"), "metallama318b");
        assert_eq!(key("llama3.1 8b"), key("Llama-3.1-8B"));
    }

    #[test]
    fn gpu_keys_drop_vendor_words_and_write_sizes_one_way() {
        assert_eq!(gpu_key("NVIDIA GeForce RTX 4090"), "rtx4090");
        assert_eq!(gpu_key("RTX 4090"), "rtx4090");
        assert_eq!(gpu_key("A100 80GB"), gpu_key("a100-80g"));
        assert_eq!(gpu_key("A100 80 GB"), "a10080g");
        assert_eq!(gpu_key("AMD Instinct MI300X"), "mi300x");
        assert_eq!(gpu_key("Tesla T4"), "t4");
        assert_eq!(gpu_key("H100 SXM"), gpu_key("h100-sxm"));
    }

    #[test]
    fn suggestions_share_a_named_word_first() {
        let names = [
            "google/gemma-3-4b-pt",
            "gemma-3-4b",
            "zai-org/GLM-4.5",
            "phi-4",
        ];
        // GLM-4.6 shares its family word with GLM-4.5 only; gemma-3-4b shares no word.
        assert_eq!(
            suggest("GLM-4.6", names.iter().copied()),
            ["zai-org/GLM-4.5"]
        );
        // Without any GLM, nothing is suggested rather than an unrelated model.
        assert!(suggest("GLM-4.6", names[..2].iter().copied()).is_empty());
        let llamas = [
            "llama-3.1-8b",
            "llama-3.1-70b",
            "llama-2-7b",
            "codellama-7b",
        ];
        // A misspelt family word still counts; the version words decide between the family.
        assert_eq!(
            suggest("lamma-3.1-8b", llamas.iter().copied()),
            ["llama-3.1-8b", "llama-3.1-70b", "llama-2-7b"]
        );
    }

    #[test]
    fn an_entry_is_suggested_once_by_its_first_name() {
        let entries = [
            ("rtx-3090", vec!["rtx-3090", "rtx3090", "3090"]),
            ("rtx-4090", vec!["rtx-4090", "rtx4090", "4090"]),
            ("h100", vec!["h100", "h100-sxm"]),
        ];
        assert_eq!(
            suggest_entries("rtx 9090", entries.iter().map(|(s, n)| (*s, n.clone()))),
            ["rtx-3090", "rtx-4090"]
        );
    }

    #[test]
    fn hostile_queries_are_cut_before_comparison() {
        let long = "a".repeat(1_000_000);
        assert_eq!(words(&long).concat().len(), MAX_QUERY);
        assert!(suggest(&long, ["llama"].iter().copied()).len() <= 1);
    }
}
