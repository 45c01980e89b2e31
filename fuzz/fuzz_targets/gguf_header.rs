//! GGUF header reader on arbitrary bytes: must return Ok or a one-line error, never panic,
//! never allocate beyond the input's size (libFuzzer's -rss_limit_mb catches that).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vramplan_formats::gguf;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    match gguf::read_bytes("fuzz.gguf", data) {
        Ok((header, tensors)) => {
            // The architecture mapping must cope with whatever types the keys have.
            let has_output = Some(tensors.iter().any(|t| t.name == "output.weight"));
            match gguf::model_config(&header, has_output, "fuzz.gguf") {
                Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
                // ... and the config.json mapping with whatever config the keys translate to.
                Ok(Ok(config)) => {
                    if let Err(e) = vramplan_core::arch::describe(&config) {
                        assert!(!e.message.contains('\n'), "multi-line error: {e}");
                    }
                }
                Ok(Err(_)) => {}
            }
            assert_eq!(tensors.len() as u64, header.tensor_count);
            // Every tensor's bytes fit in the data section (a file without tensors may end
            // before its aligned data offset: there is no data section to fit).
            let total = tensors
                .iter()
                .fold(0u64, |a, t| a.saturating_add(t.n_bytes));
            if !tensors.is_empty() {
                assert!(header.data_offset.saturating_add(total) <= len);
            }
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
    // Detection on the same bytes.
    let _ = vramplan_formats::detect::detect_bytes(data, len);
});
