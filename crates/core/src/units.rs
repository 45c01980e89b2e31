//! Units: every byte figure is an integer count of bytes; these helpers turn it into text that
//! always names its unit, GB (10^9) or GiB (2^30), never a bare "G".

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;
pub const GB: u64 = 1_000_000_000;

/// `12.34 GiB`
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB as f64)
}

/// `13.25 GB`
pub fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / GB as f64)
}

/// `13.25 GB (12.34 GiB)`: both units, for breakdown tables.
pub fn gb_gib(bytes: u64) -> String {
    format!("{} ({})", gb(bytes), gib(bytes))
}

/// `12.34 MB (11.77 MiB)` below 1 GB, else as `gb_gib`: for file sizes, which range from
/// test fixtures to hundreds of GB.
pub fn size(bytes: u64) -> String {
    if bytes >= GB {
        return gb_gib(bytes);
    }
    format!(
        "{:.2} MB ({:.2} MiB)",
        bytes as f64 / 1e6,
        bytes as f64 / MIB as f64
    )
}

/// Human-readable small sizes for per-token figures: `131,072 B (128.0 KiB)`.
pub fn bytes_kib(bytes: u64) -> String {
    format!(
        "{} B ({:.1} KiB)",
        thousands(bytes),
        bytes as f64 / KIB as f64
    )
}

/// `8,030,261,248`
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count with its noun in the right number: `1 sequence`, `16 sequences`, `1,024 tokens`.
/// `noun` is the singular; the plural adds "s" (every noun vramplan counts takes one).
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", thousands(n))
    }
}

/// `8.03B`, `124.4M`: parameter counts, decimal as model cards print them.
pub fn params_short(n: u64) -> String {
    let f = n as f64;
    if f >= 1e12 {
        format!("{:.2}T", f / 1e12)
    } else if f >= 1e9 {
        format!("{:.2}B", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.1}M", f / 1e6)
    } else {
        thousands(n)
    }
}

/// Parses a memory size with an explicit unit: `24GiB`, `80GB`, `512MiB`, `1.5TB`, `24e9B`.
/// A bare number is refused: the GB/GiB ambiguity is exactly what this tool exists to remove.
/// Every error quotes the text as given.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    // The unit is the trailing run of letters; an exponent's `e` belongs to the number only
    // when digits follow it (`24e9B`), so `1EiB` is 1 of the unit EiB.
    let unit_start = t
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphabetic())
        .last()
        .map(|(i, _)| i)
        .ok_or_else(|| {
            format!("memory size '{text}' has no unit: write e.g. 24GiB (2^30 bytes) or 24GB (10^9 bytes)")
        })?;
    let (num, unit) = t.split_at(unit_start);
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "pb" => 1e15,
        "eb" => 1e18,
        "kib" => KIB as f64,
        "mib" => MIB as f64,
        "gib" => GIB as f64,
        "tib" => (GIB as f64) * 1024.0,
        "pib" => (GIB as f64) * 1024.0 * 1024.0,
        "eib" => (GIB as f64) * 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "memory size '{text}': unknown unit '{unit}'; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ))
        }
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("memory size '{text}': '{}' is not a number", num.trim()))?;
    let bytes = value * scale;
    if !bytes.is_finite() || bytes <= 0.0 {
        return Err(format!("memory size '{text}' must be a positive amount"));
    }
    if bytes > MAX_MEMORY_BYTES as f64 {
        return Err(format!(
            "memory size '{text}' is beyond any GPU (limit 1 PiB)"
        ));
    }
    Ok(bytes.round() as u64)
}

/// Largest memory size accepted: 1 PiB, ×5,000 the largest GPU (a 192 GB B200) and far from
/// where byte sums could overflow.
pub const MAX_MEMORY_BYTES: u64 = 1 << 50;

/// Ceiling division for u64 that cannot overflow.
pub fn div_ceil(a: u64, b: u64) -> u64 {
    if b == 0 {
        return 0;
    }
    a / b + u64::from(!a.is_multiple_of(b))
}

/// `a * num / den` computed in u128 and saturated to u64: used for fractional byte rates such
/// as q8_0's 34 bytes per 32 elements and for utilisation fractions.
pub fn mul_ratio(a: u64, num: u64, den: u64) -> u64 {
    if den == 0 {
        return u64::MAX;
    }
    let v = (a as u128) * (num as u128) / (den as u128);
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `a * b / c` rounded up, in u128, saturating.
pub fn mul_ratio_ceil(a: u64, num: u64, den: u64) -> u64 {
    if den == 0 {
        return u64::MAX;
    }
    let p = (a as u128) * (num as u128);
    let v = p / (den as u128) + u128::from(!p.is_multiple_of(den as u128));
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_sizes_with_units() {
        assert_eq!(parse_size("24GiB").unwrap(), 24 * GIB);
        assert_eq!(parse_size("80GB").unwrap(), 80_000_000_000);
        assert_eq!(parse_size("512 MiB").unwrap(), 512 * MIB);
        assert_eq!(parse_size("1.5TB").unwrap(), 1_500_000_000_000);
        assert_eq!(parse_size("24e9B").unwrap(), 24_000_000_000);
        assert!(parse_size("24").unwrap_err().contains("no unit"));
        assert!(parse_size("-3GB").is_err());
        assert!(parse_size("3XB").unwrap_err().contains("unknown unit"));
        assert_eq!(
            parse_size("1e30GB").unwrap_err(),
            "memory size '1e30GB' is beyond any GPU (limit 1 PiB)"
        );
        // The unit is the trailing letters: EiB is a unit (not "1E" and "iB"), and refused
        // with what the user wrote.
        assert_eq!(
            parse_size("1EiB").unwrap_err(),
            "memory size '1EiB' is beyond any GPU (limit 1 PiB)"
        );
        assert_eq!(parse_size("1PiB").unwrap(), 1 << 50);
        assert_eq!(
            parse_size("x GB").unwrap_err(),
            "memory size 'x GB': 'x' is not a number"
        );
    }

    #[test]
    fn formatting_names_units() {
        assert_eq!(gib(GIB * 3 / 2), "1.50 GiB");
        assert_eq!(gb(26_000_000_000), "26.00 GB");
        assert_eq!(thousands(8_030_261_248), "8,030,261,248");
        assert_eq!(thousands(999), "999");
        assert_eq!(params_short(8_030_261_248), "8.03B");
    }

    #[test]
    fn ratios_do_not_overflow() {
        assert_eq!(mul_ratio(u64::MAX, 2, 1), u64::MAX);
        assert_eq!(mul_ratio(32, 34, 32), 34);
        assert_eq!(mul_ratio_ceil(33, 34, 32), 36); // 33*34/32 = 35.06 -> 36
        assert_eq!(div_ceil(17, 16), 2);
    }
}
