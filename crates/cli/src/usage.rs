//! Command-line mistakes as one-line errors (exit code 2), like every other bad input: clap's
//! own messages are several lines with a usage block, and a negative number after a flag
//! (`--context -5`) reaches clap as an unknown flag ("unexpected argument '-5'").

use clap::error::ErrorKind;
use std::ffi::OsString;
use std::process::ExitCode;

/// A negative number given to a flag (`--context -5`, `--batch=-1`, `-c -5`, a size such as
/// `--gpu-memory -1GiB`): no vramplan flag takes one, so it is named with the flag before clap
/// mistakes it for a flag of its own. No flag's name starts with a digit, so a `-` followed by a
/// digit (or `.` and a digit) is a negative value, with or without a unit.
pub fn negative_value(args: &[OsString]) -> Option<String> {
    let is_negative_number = |s: &str| {
        s.strip_prefix('-').is_some_and(|rest| {
            let digits = rest.strip_prefix('.').unwrap_or(rest);
            digits.starts_with(|c: char| c.is_ascii_digit())
                || (!rest.is_empty() && rest.parse::<f64>().is_ok())
        })
    };
    let mut prev: Option<&str> = None;
    for a in args.iter().skip(1) {
        let Some(text) = a.to_str() else {
            prev = None;
            continue;
        };
        if let Some((flag, value)) = text.split_once('=') {
            if flag.starts_with('-') && is_negative_number(value) {
                return Some(format!(
                    "{flag} {value}: the value cannot be negative; give a positive number"
                ));
            }
        }
        if is_negative_number(text) {
            if let Some(flag) = prev.filter(|p| p.starts_with('-')) {
                return Some(format!(
                    "{flag} {text}: the value cannot be negative; give a positive number"
                ));
            }
            return Some(format!(
                "{text}: negative numbers are not accepted anywhere on the command line"
            ));
        }
        prev = Some(text);
    }
    None
}

/// Prints a clap error as vramplan prints every error and returns the exit code; help and
/// version requests print as clap formats them.
pub fn report(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        }
        _ => {
            eprintln!("{}", one_line(&e.render().to_string()));
            ExitCode::from(2)
        }
    }
}

/// clap's message up to its usage block, on one line: "error: unexpected argument '--contxt'
/// found; tip: a similar argument exists: '--context'".
pub fn one_line(rendered: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let l = line.trim();
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        if !l.is_empty() {
            parts.push(l.to_string());
        }
    }
    let mut out = String::new();
    for p in parts {
        if out.is_empty() {
            out = p;
        } else if p.starts_with("tip:") {
            out.push_str("; ");
            out.push_str(&p);
        } else {
            out.push(' ');
            out.push_str(&p);
        }
    }
    if out.starts_with("error:") {
        out
    } else {
        format!("error: {out}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("vramplan")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn negative_values_are_named_with_their_flag() {
        assert_eq!(
            negative_value(&args(&["estimate", "--context", "-5"])).unwrap(),
            "--context -5: the value cannot be negative; give a positive number"
        );
        assert_eq!(
            negative_value(&args(&["estimate", "--batch=-1"])).unwrap(),
            "--batch -1: the value cannot be negative; give a positive number"
        );
        assert_eq!(
            negative_value(&args(&["plan", "--rate", "-0.5"])).unwrap(),
            "--rate -0.5: the value cannot be negative; give a positive number"
        );
        // A size with its unit, after the flag or after `=`.
        assert_eq!(
            negative_value(&args(&["estimate", "--gpu-memory-in-use", "-1GiB"])).unwrap(),
            "--gpu-memory-in-use -1GiB: the value cannot be negative; give a positive number"
        );
        assert_eq!(
            negative_value(&args(&["estimate", "--gpu-memory=-.5GB"])).unwrap(),
            "--gpu-memory -.5GB: the value cannot be negative; give a positive number"
        );
        // Flags themselves (-m, -ngl, -c) are not numbers.
        assert!(negative_value(&args(&["estimate", "-m", "x", "-ngl", "9", "-c", "5"])).is_none());
    }

    #[test]
    fn clap_messages_become_one_line() {
        let rendered = "error: unexpected argument '--contxt' found\n\n  tip: a similar argument exists: '--context'\n\nUsage: vramplan estimate [OPTIONS]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: unexpected argument '--contxt' found; tip: a similar argument exists: '--context'"
        );
    }
}
