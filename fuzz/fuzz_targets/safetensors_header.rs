//! safetensors header reader on arbitrary bytes (the whole input is the file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vramplan_formats::{safetensors, MemorySource, TensorList};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let mut tensors = TensorList::new();
    match safetensors::read_header(&MemorySource::new("fuzz.safetensors", data), &mut tensors, 0) {
        Ok(h) => {
            let total: u64 = tensors.iter().map(|t| t.n_bytes).sum();
            assert_eq!(8 + h.header_len + total, len);
            assert_eq!(tensors.len() as u64, h.tensor_count);
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "multi-line error: {e}"),
    }
    // The JSON parser alone, with a file length that makes any offsets plausible.
    let mut tensors = TensorList::new();
    if let Err(e) =
        safetensors::parse_header_bytes(data, u64::MAX, "fuzz.safetensors", &mut tensors)
    {
        assert!(!e.to_string().contains('\n'));
    }
});
