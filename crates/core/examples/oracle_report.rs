//! Development aid: every model type of the transformers oracle through the mapping, with its
//! parameters, KV widths and state bytes against what transformers built.
//! `cargo run -p vramplan-core --example oracle_report [TYPE...]`.
use serde_json::Value;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/oracle/transformers-5.24.0");
    let only: Vec<String> = std::env::args().skip(1).collect();
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let mut rows = Vec::new();
    for t in index["types"].as_array().unwrap() {
        let mt = t["model_type"].as_str().unwrap();
        if !only.is_empty() && !only.iter().any(|o| o == mt) {
            continue;
        }
        if t["status"] != "built" {
            continue;
        }
        let rec: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{mt}.json"))).unwrap())
                .unwrap();
        let kind = rec["model_kind"].as_str().unwrap_or("");
        let total = rec["params"]["total"].as_u64().unwrap();
        let text = rec["params"]["text"].as_u64().unwrap_or(total);
        let kv = rec["summary"]["kv_elems_per_token"].as_u64();
        let state = rec["summary"]["state_bytes"].as_u64();
        match vramplan_core::arch::describe(&rec["config"]) {
            Ok(d) => {
                let p = d.params();
                let err = (p as f64 - total as f64) / total as f64 * 100.0;
                let our_kv: u64 = d
                    .layers()
                    .filter_map(|l| l.attention.as_ref())
                    .map(|a| a.k_width() + a.v_width() + a.indexer_width())
                    .sum();
                let our_state = d.layer_summary().state_bytes_per_sequence;
                let kvs = match kv {
                    Some(k) if k == our_kv => "kv=".to_string(),
                    Some(k) => format!("KV {our_kv}/{k}"),
                    None => "kv?".into(),
                };
                let sts = match state {
                    Some(s) if s == our_state => "st=".to_string(),
                    Some(s) => format!("ST {our_state}/{s}"),
                    None => "st?".into(),
                };
                let tp = d.text_params();
                let terr = (tp as f64 - text as f64) / text as f64 * 100.0;
                rows.push((err.abs(), format!("{mt:32} {kind:8} {p:>14} {total:>14} {err:+9.4}% text {terr:+8.3}% {kvs:20} {sts:24} {}", d.warnings.join(" | ").chars().take(150).collect::<String>())));
            }
            Err(e) => rows.push((
                1e9,
                format!(
                    "{mt:32} {kind:8} REFUSED {}",
                    e.message.chars().take(160).collect::<String>()
                ),
            )),
        }
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n = rows.len();
    let within = |x: f64| rows.iter().filter(|r| r.0 <= x).count();
    for (_, r) in &rows {
        println!("{r}");
    }
    println!(
        "{n} built; within 0.1%: {}, within 1%: {}",
        within(0.1),
        within(1.0)
    );
}
