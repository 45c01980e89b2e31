//! safetensors header reader on arbitrary bytes (the whole input is the file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vramplan_formats::safetensors;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    match safetensors::read_header(&mut &data[..], len, "fuzz.safetensors") {
        Ok(h) => {
            let total: u64 = h.tensors.iter().map(|t| t.n_bytes).sum();
            assert_eq!(8 + h.header_len + total, len);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
    // The JSON parser alone, with a file length that makes any offsets plausible.
    if let Err(e) = safetensors::parse_header_bytes(data, u64::MAX, "fuzz.safetensors") {
        assert!(!e.to_string().contains('\n'));
    }
});
