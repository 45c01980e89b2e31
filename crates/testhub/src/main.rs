//! `vramplan-testhub`: the loopback Hub, CDN and ollama registry of the tests, as a process, for
//! the benchmark (`scripts/bench_hub.sh`) and the README's examples.
//!
//! ```text
//! vramplan-testhub [--fixtures DIR] [--latency-ms N] [--token T]
//! ```
//! prints `HF_ENDPOINT=…` and `VRAMPLAN_OLLAMA_REGISTRY=…` lines, then serves until killed.
//! `GET /_testhub/hits` answers the requests seen so far (count, and body bytes per server);
//! `GET /_testhub/clear` forgets them.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = std::env::var_os("VRAMPLAN_FIXTURES").map(PathBuf::from);
    let mut latency = 0u64;
    let mut token: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fixtures" => dir = args.next().map(PathBuf::from),
            "--latency-ms" => latency = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--token" => token = args.next(),
            _ => {
                eprintln!("usage: vramplan-testhub [--fixtures DIR] [--latency-ms N] [--token T]");
                std::process::exit(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("give --fixtures DIR (or set VRAMPLAN_FIXTURES)");
        std::process::exit(2);
    };
    let hub = vramplan_testhub::TestHub::start(&dir);
    hub.set_latency(Duration::from_millis(latency));
    if let Some(t) = token {
        hub.set_token(&t);
    }
    println!("HF_ENDPOINT={}", hub.endpoint());
    println!("VRAMPLAN_OLLAMA_REGISTRY={}", hub.registry());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
