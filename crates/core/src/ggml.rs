//! ggml tensor types: block size and bytes per block, the exact storage of every GGUF quant type.
//! Source: ggml-org/ggml `src/ggml.c` type_traits[] and `src/ggml-common.h` block structs,
//! cross-checked with llama.cpp `gguf-py/gguf/constants.py` GGML_QUANT_SIZES
//! (summarised in docs/reference/gguf_and_quant.md §1.2).

use crate::units::div_ceil;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType {
    pub id: u32,
    pub name: &'static str,
    /// Elements per block.
    pub block: u32,
    /// Bytes per block.
    pub block_bytes: u32,
}

macro_rules! ggml_types {
    ($($id:literal $name:literal $block:literal $bytes:literal;)*) => {
        /// Every type id that may appear in a GGUF file (removed ids 4, 5, 31–33, 36–38 are absent).
        pub const GGML_TYPES: &[GgmlType] = &[
            $(GgmlType { id: $id, name: $name, block: $block, block_bytes: $bytes },)*
        ];
    };
}

ggml_types! {
    0 "F32" 1 4;
    1 "F16" 1 2;
    2 "Q4_0" 32 18;
    3 "Q4_1" 32 20;
    6 "Q5_0" 32 22;
    7 "Q5_1" 32 24;
    8 "Q8_0" 32 34;
    9 "Q8_1" 32 36;
    10 "Q2_K" 256 84;
    11 "Q3_K" 256 110;
    12 "Q4_K" 256 144;
    13 "Q5_K" 256 176;
    14 "Q6_K" 256 210;
    15 "Q8_K" 256 292;
    16 "IQ2_XXS" 256 66;
    17 "IQ2_XS" 256 74;
    18 "IQ3_XXS" 256 98;
    19 "IQ1_S" 256 50;
    20 "IQ4_NL" 32 18;
    21 "IQ3_S" 256 110;
    22 "IQ2_S" 256 82;
    23 "IQ4_XS" 256 136;
    24 "I8" 1 1;
    25 "I16" 1 2;
    26 "I32" 1 4;
    27 "I64" 1 8;
    28 "F64" 1 8;
    29 "IQ1_M" 256 56;
    30 "BF16" 1 2;
    34 "TQ1_0" 256 54;
    35 "TQ2_0" 256 66;
    39 "MXFP4" 32 17;
    40 "NVFP4" 64 36;
    41 "Q1_0" 128 18;
    42 "Q2_0" 64 18;
}

impl GgmlType {
    pub fn by_id(id: u32) -> Option<GgmlType> {
        GGML_TYPES.iter().copied().find(|t| t.id == id)
    }

    pub fn by_name(name: &str) -> Option<GgmlType> {
        GGML_TYPES
            .iter()
            .copied()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Bytes of a row of `n` elements: ggml requires n to be a multiple of the block; a
    /// partial block is rounded up so that a malformed shape can never under-count.
    pub fn row_bytes(&self, n: u64) -> u64 {
        div_ceil(n, self.block as u64).saturating_mul(self.block_bytes as u64)
    }

    /// Bits per weight, e.g. 4.5 for Q4_0 (18 bytes per 32 weights).
    pub fn bits_per_weight(&self) -> f64 {
        8.0 * self.block_bytes as f64 / self.block as f64
    }
}

/// llama.cpp `llama_ftype` ids as stored in `general.file_type` (llama.h / constants.py LlamaFileType).
pub fn file_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        4 => "Q4_1_SOME_F16",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        33 => "Q4_0_4_4",
        34 => "Q4_0_4_8",
        35 => "Q4_0_8_8",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        1024 => "GUESSED",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_layouts_match_ggml_common_h() {
        // Q4_K: 2 f16 (4 B) + 12 scale bytes + 128 nibble bytes = 144 B per 256 weights = 4.5 bpw.
        let q4k = GgmlType::by_name("q4_k").unwrap();
        assert_eq!((q4k.block, q4k.block_bytes), (256, 144));
        assert_eq!(q4k.bits_per_weight(), 4.5);
        // Q6_K: 128 ql + 64 qh + 16 scales + f16 d = 210 B per 256 = 6.5625 bpw.
        assert_eq!(GgmlType::by_name("Q6_K").unwrap().bits_per_weight(), 6.5625);
        // Q8_0 row of 4096: 128 blocks × 34 B = 4352 B.
        assert_eq!(GgmlType::by_name("Q8_0").unwrap().row_bytes(4096), 4352);
        assert!(GgmlType::by_id(4).is_none(), "Q4_2 was removed");
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
    }
}
