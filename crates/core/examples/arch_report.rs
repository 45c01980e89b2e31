//! Development aid: every catalogue entry's config.json through the mapping, with its
//! parameter count against the published one. `cargo run -p vramplan-core --example arch_report`.
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/catalogue");
    let mut rows = Vec::new();
    for org in std::fs::read_dir(&root).unwrap() {
        let org = org.unwrap().path();
        for dir in std::fs::read_dir(&org).unwrap() {
            let dir = dir.unwrap().path();
            let cfg = dir.join("config.json");
            let meta = std::fs::read_to_string(dir.join("meta.toml")).unwrap_or_default();
            let published = meta
                .lines()
                .find(|l| l.starts_with("published_params ="))
                .and_then(|l| l.split('=').nth(1))
                .map(|v| v.trim().replace('_', ""))
                .and_then(|v| v.parse::<u64>().ok());
            let Ok(text) = std::fs::read_to_string(&cfg) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let name = dir.strip_prefix(&root).unwrap().display().to_string();
            match vramplan_core::arch::describe(&v) {
                Ok(d) => {
                    let p = d.params();
                    let err = published.map(|q| (p as f64 - q as f64) / q as f64 * 100.0);
                    rows.push((
                        err.map(f64::abs).unwrap_or(-1.0),
                        format!(
                            "{name:60} {:>16} {:>16} {:>8} {}",
                            p,
                            published.map(|x| x.to_string()).unwrap_or_default(),
                            err.map(|e| format!("{e:+.3}%")).unwrap_or_default(),
                            d.warnings.join(" | ")
                        ),
                    ));
                }
                Err(e) => rows.push((1e9, format!("{name:60} ERROR {e}"))),
            }
        }
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, r) in rows {
        println!("{r}");
    }
}
