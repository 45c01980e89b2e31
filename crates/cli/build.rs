//! Compresses the calibration records (data/calibration/*.jsonl at the workspace root) into
//! OUT_DIR so that `vramplan calibrate` carries them: an installed binary or the Python wheel
//! has no repository beside it. A new file in data/calibration needs no code change.
use flate2::{write::DeflateEncoder, Compression};
use std::{env, fs, io::Write, path::Path};

fn main() {
    let manifest = env::var("CARGO_MANIFEST_DIR").unwrap();
    let dir = Path::new(&manifest).join("../../data/calibration");
    let out_dir = env::var("OUT_DIR").unwrap();
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    let mut table = String::from(
        "/// (file name, deflate-compressed bytes) of every data/calibration/*.jsonl.\n\
         pub const CALIBRATION_FILES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
        enc.write_all(&fs::read(f).unwrap()).unwrap();
        let packed = Path::new(&out_dir).join(format!("{name}.deflate"));
        fs::write(&packed, enc.finish().unwrap()).unwrap();
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            packed.display().to_string()
        ));
    }
    table.push_str("];\n");
    fs::write(Path::new(&out_dir).join("calibration_files.rs"), table).unwrap();
}
