//! The README's examples, run: every command in a ```console block of README.md runs against
//! this build and its output must be exactly what the README shows after the command. A README
//! that drifted fails here with the first line that differs; `scripts/update_readme.sh`
//! (VRAMPLAN_BLESS=1) rewrites the blocks with what the binary prints now.
//!
//! Commands run in a scratch folder under target/ (never the working tree): a command that
//! writes a file there (`--svg docs/simulate-figure2.svg`) has it compared with the repository's
//! copy, which only the bless run replaces. The local model stores point at empty folders, so
//! what is cached on the machine running the test cannot change an answer; `HF_ENDPOINT` and
//! the ollama registry point at the loopback Hub of the tests (crates/testhub, over the
//! fixtures of scripts/gen_fixtures.py), and vramplan's cache at a fresh folder, so the Hub
//! examples run in README order: the first reads, later ones may use the cache.
//!
//! Our own runner rather than trycmd: trycmd runs Markdown cases in the file's own folder (the
//! working tree) and its overwrite of Markdown is best-effort; here a run never touches the
//! tree and a bless rewrites exactly the output lines. In a block, a line `...` stands for any
//! number of lines and `[..]` inside a line for any text: the marks for output that varies.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One command of a console block and the lines the README shows for it.
struct Example {
    /// Line index (0-based) of the `$ ` line in README.md.
    line: usize,
    command: String,
    /// Index range of the expected output lines in README.md.
    output: std::ops::Range<usize>,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn examples(lines: &[&str]) -> Vec<Example> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```console" {
            i += 1;
            continue;
        }
        i += 1;
        let mut current: Option<Example> = None;
        while i < lines.len() && lines[i].trim_end() != "```" {
            if let Some(cmd) = lines[i].strip_prefix("$ ") {
                if let Some(e) = current.take() {
                    out.push(e);
                }
                current = Some(Example {
                    line: i,
                    command: cmd.to_string(),
                    output: i + 1..i + 1,
                });
            } else if let Some(e) = current.as_mut() {
                e.output.end = i + 1;
            }
            i += 1;
        }
        if let Some(e) = current.take() {
            out.push(e);
        }
        i += 1;
    }
    out
}

/// Runs one README command in `dir`; stdout, then stderr, as the terminal shows them.
fn run(command: &str, dir: &Path, empty: &Path, hub: &vramplan_testhub::TestHub) -> String {
    let words = shlex::split(command).unwrap_or_else(|| panic!("cannot split: {command}"));
    assert_eq!(
        words[0], "vramplan",
        "README commands run vramplan: {command}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vramplan"))
        .args(&words[1..])
        .current_dir(dir)
        .env("HF_HUB_CACHE", empty)
        .env("HF_HOME", empty)
        .env("OLLAMA_MODELS", empty)
        .env("HOME", empty)
        .env("HF_ENDPOINT", hub.endpoint())
        .env("VRAMPLAN_OLLAMA_REGISTRY", hub.registry())
        .env("VRAMPLAN_CACHE_DIR", dir.join("vramplan-cache"))
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

/// `expected` (with `...` and `[..]` marks) against `actual`, line by line.
fn matches(expected: &[&str], actual: &[&str]) -> Result<(), String> {
    fn line_matches(pattern: &str, text: &str) -> bool {
        let parts: Vec<&str> = pattern.split("[..]").collect();
        if parts.len() == 1 {
            return pattern == text;
        }
        let mut rest = text;
        for (k, part) in parts.iter().enumerate() {
            if k == 0 {
                let Some(r) = rest.strip_prefix(part) else {
                    return false;
                };
                rest = r;
            } else if k == parts.len() - 1 {
                return rest.ends_with(part);
            } else {
                let Some(at) = rest.find(part) else {
                    return false;
                };
                rest = &rest[at + part.len()..];
            }
        }
        true
    }
    fn go(e: &[&str], a: &[&str]) -> bool {
        match e.first() {
            None => a.is_empty(),
            Some(&"...") => (0..=a.len()).any(|skip| go(&e[1..], &a[skip..])),
            Some(p) => !a.is_empty() && line_matches(p, a[0]) && go(&e[1..], &a[1..]),
        }
    }
    if go(expected, actual) {
        return Ok(());
    }
    let first = expected
        .iter()
        .zip(actual.iter())
        .position(|(e, a)| *e != "..." && !line_matches(e, a))
        .unwrap_or(expected.len().min(actual.len()));
    Err(format!(
        "first difference at output line {}:\n  README: {:?}\n  binary: {:?}\n(README {} lines, binary {} lines)",
        first + 1,
        expected.get(first).copied().unwrap_or("<end>"),
        actual.get(first).copied().unwrap_or("<end>"),
        expected.len(),
        actual.len()
    ))
}

#[test]
fn readme_examples_print_what_the_readme_shows() {
    let root = workspace();
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let found = examples(&lines);
    assert!(
        found.len() >= 8,
        "only {} README examples found",
        found.len()
    );
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("readme");
    let _ = std::fs::remove_dir_all(&scratch);
    let empty = scratch.join("empty-stores");
    std::fs::create_dir_all(scratch.join("docs")).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    let bless = std::env::var_os("VRAMPLAN_BLESS").is_some();
    let hub = vramplan_testhub::TestHub::start(&vramplan_testhub::fixtures_dir());
    let mut failures = Vec::new();
    // (range in README lines, new output lines) for a bless.
    let mut rewrites: Vec<(std::ops::Range<usize>, Vec<String>)> = Vec::new();
    for ex in &found {
        let actual = run(&ex.command, &scratch, &empty, &hub);
        let actual_lines: Vec<&str> = actual.lines().collect();
        let expected: Vec<&str> = lines[ex.output.clone()].to_vec();
        if let Err(why) = matches(&expected, &actual_lines) {
            if bless {
                rewrites.push((
                    ex.output.clone(),
                    actual_lines.iter().map(|l| l.to_string()).collect(),
                ));
            } else {
                failures.push(format!(
                    "README.md line {}: $ {}\n{why}",
                    ex.line + 1,
                    ex.command
                ));
            }
        }
    }
    // Files the commands wrote (docs/...) must equal the repository's copies.
    for entry in std::fs::read_dir(scratch.join("docs")).unwrap() {
        let written = entry.unwrap().path();
        let name = written.file_name().unwrap().to_owned();
        let tracked = root.join("docs").join(&name);
        let same = std::fs::read(&tracked).ok() == std::fs::read(&written).ok();
        if same {
            continue;
        }
        if bless {
            std::fs::copy(&written, &tracked).unwrap();
        } else {
            failures.push(format!(
                "docs/{} written by a README command differs from the repository's copy",
                name.to_string_lossy()
            ));
        }
    }
    if bless && !rewrites.is_empty() {
        let mut out: Vec<String> = Vec::new();
        let mut i = 0;
        for (range, new) in &rewrites {
            out.extend(lines[i..range.start].iter().map(|l| l.to_string()));
            out.extend(new.iter().cloned());
            i = range.end;
        }
        out.extend(lines[i..].iter().map(|l| l.to_string()));
        std::fs::write(&readme_path, out.join("\n") + "\n").unwrap();
        eprintln!("README.md: {} example(s) rewritten", rewrites.len());
    }
    assert!(
        failures.is_empty(),
        "{} README example(s) differ from the binary (run scripts/update_readme.sh after checking the change is right):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_matcher_honours_its_marks() {
    assert!(matches(&["a", "...", "z"], &["a", "b", "c", "z"]).is_ok());
    assert!(matches(&["took [..] s"], &["took 1.5 s"]).is_ok());
    assert!(matches(&["a", "b"], &["a", "c"]).is_err());
    assert!(matches(&["a"], &["a", "b"]).is_err());
}
