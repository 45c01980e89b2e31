//! GGUF header reader on arbitrary bytes: must return Ok or a one-line error, never panic,
//! never allocate beyond the input's size (libFuzzer's -rss_limit_mb catches that).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vramplan_formats::gguf;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    match gguf::read_header(&mut &data[..], len, "fuzz.gguf") {
        Ok(header) => {
            // The architecture mapping must cope with whatever types the keys have.
            let has_output = Some(header.tensors.iter().any(|t| t.name == "output.weight"));
            // ... and the config.json mapping with whatever config the keys translate to.
            if let Ok(config) = gguf::model_config(&header, has_output) {
                if let Err(e) = vramplan_core::arch::describe(&config) {
                    assert!(!e.message.contains('\n'), "multi-line error: {e}");
                }
            }
            let _ = header.total_params();
            // Every tensor lies inside the file.
            for t in &header.tensors {
                assert!(header.data_offset + t.offset + t.n_bytes <= len);
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
    // Detection on the same bytes.
    let _ = vramplan_formats::detect::detect_bytes(data, len);
});
