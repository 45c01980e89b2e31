//! Embeds the catalogue (data/catalogue/<org>/<name>/{meta.toml,config.json}) so that a new entry
//! needs no code change.
use std::{env, fs, path::Path};

fn main() {
    let root = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("data/catalogue");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    let mut orgs: Vec<_> = fs::read_dir(&root)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    orgs.sort();
    for org in orgs.iter().filter(|p| p.is_dir()) {
        println!("cargo:rerun-if-changed={}", org.display());
        let mut names: Vec<_> = fs::read_dir(org)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for dir in names.iter().filter(|p| p.is_dir()) {
            println!("cargo:rerun-if-changed={}", dir.display());
            let meta = dir.join("meta.toml");
            if !meta.exists() {
                continue;
            }
            let config = dir.join("config.json");
            for f in [&meta, &config] {
                println!("cargo:rerun-if-changed={}", f.display());
            }
            let rel = dir
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let config_expr = if config.exists() {
                format!("Some(include_str!({:?}))", config.display().to_string())
            } else {
                "None".to_string()
            };
            entries.push(format!(
                "    ({rel:?}, include_str!({:?}), {config_expr}),\n",
                meta.display().to_string()
            ));
        }
    }
    let mut out = String::from(
        "/// (directory under data/catalogue, meta.toml, config.json if stored)\npub const CATALOGUE_FILES: &[(&str, &str, Option<&str>)] = &[\n",
    );
    for e in entries {
        out.push_str(&e);
    }
    out.push_str("];\n");
    fs::write(
        Path::new(&env::var("OUT_DIR").unwrap()).join("catalogue_files.rs"),
        out,
    )
    .unwrap();
}
