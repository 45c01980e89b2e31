//! Helpers shared by the binary's end-to-end tests: run `vramplan`, parse its JSON, and check
//! that bad input fails with one line on standard error and exit code 2.
#![allow(dead_code)] // each test file uses some of them

pub mod server;

use std::process::{Command, Output};

pub fn vramplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vramplan"))
        .args(args)
        .output()
        .expect("run vramplan")
}

pub fn json(args: &[&str]) -> serde_json::Value {
    let out = vramplan(args);
    assert!(
        out.status.success(),
        "vramplan {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

pub fn fails_with(args: &[&str], needle: &str) {
    let out = vramplan(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "vramplan {args:?} should exit 2; stderr: {err}"
    );
    assert!(
        err.contains(needle),
        "vramplan {args:?}: expected '{needle}' in: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "error must be one line: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
