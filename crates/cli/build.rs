//! Compresses the calibration records (data/calibration/*.jsonl at the workspace root, and those
//! of its folders one level down, as `llamacpp_truth/cpu_runs.jsonl`) into OUT_DIR so that
//! `vramplan calibrate` carries them: an installed binary or the Python wheel has no repository
//! beside it. A new file in data/calibration needs no code change.
use flate2::{write::DeflateEncoder, Compression};
use std::{env, fs, io::Write, path::Path};

fn main() {
    let manifest = env::var("CARGO_MANIFEST_DIR").unwrap();
    let dir = Path::new(&manifest).join("../../data/calibration");
    let out_dir = env::var("OUT_DIR").unwrap();
    println!("cargo:rerun-if-changed={}", dir.display());
    let list = |d: &Path| -> Vec<std::path::PathBuf> {
        fs::read_dir(d)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let mut files = Vec::new();
    for p in list(&dir) {
        if p.is_dir() {
            println!("cargo:rerun-if-changed={}", p.display());
            files.extend(list(&p));
        } else {
            files.push(p);
        }
    }
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    let mut table = String::from(
        "/// (path under data/calibration, deflate-compressed bytes) of every record file.\n\
         pub const CALIBRATION_FILES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&fs::read(f).unwrap()).unwrap();
        let packed = Path::new(&out_dir).join(format!("{}.deflate", name.replace('/', "__")));
        fs::write(&packed, enc.finish().unwrap()).unwrap();
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            packed.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(Path::new(&out_dir).join("calibration_files.rs"), table).unwrap();
}
