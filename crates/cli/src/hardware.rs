//! This machine's accelerators and host memory, as the vendors' own tools report them:
//! `nvidia-smi` (NVIDIA), `rocm-smi` (AMD), `sysctl` (Apple silicon's unified memory), and
//! /proc/meminfo or `sysctl hw.memsize` for host memory. Each tool is run from PATH, so tests
//! put fake ones there. A name the catalogue knows becomes that card (its memory as CUDA or
//! ROCm reports it); any other keeps the memory the tool printed.

use std::process::Command;
use vramplan_core::units::parse_size;
use vramplan_core::{catalogue, Gpu};

/// The GPUs found and how.
#[derive(Debug, Clone)]
pub struct Detected {
    pub gpus: Vec<Gpu>,
    /// The tool that found them: "nvidia-smi", "rocm-smi" or "sysctl (Apple silicon)".
    pub source: &'static str,
    /// What the reader should know about the figures (a name not in the catalogue, a limit).
    pub notes: Vec<String>,
}

/// Output of a tool, when it runs and succeeds. A tool that is missing, fails or prints
/// non-UTF-8 is simply absent: detection falls through to the next one.
fn run(tool: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(tool).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

/// A card by the name the tool printed: the catalogue entry (names.rs matching), else a card of
/// the memory the tool reported, named as printed.
/// A catalogue card whose memory is not within 10% of what the tool reports is another memory
/// size sold under the same name (the 8 GB and 16 GB RTX 4060 Ti both print "NVIDIA GeForce
/// RTX 4060 Ti"): the reported memory is used instead.
fn card(name: &str, memory_bytes: u64, notes: &mut Vec<String>) -> Gpu {
    let gib = vramplan_core::units::gib;
    match catalogue().gpu(name) {
        Ok(g) => {
            // The tool's figure is nvidia-smi's (or rocm-smi's) total, a few hundred MiB above
            // the runtime total the catalogue holds when it has no smi_memory_mib.
            let listed = g.smi_mib().saturating_mul(1 << 20);
            if memory_bytes.abs_diff(listed) <= listed / 10 {
                return g.clone();
            }
            notes.push(format!(
                "'{name}' reports {}, not the {} of the catalogue's {}: another memory size of that name; using the {} it reports, with no bandwidth figures",
                gib(memory_bytes),
                gib(listed),
                g.id,
                gib(memory_bytes)
            ));
        }
        Err(_) => notes.push(format!(
            "'{name}' is not in the GPU catalogue: using the {} it reports, with no bandwidth figures",
            gib(memory_bytes)
        )),
    }
    let mut g = Gpu::custom(memory_bytes);
    g.id = name.to_string();
    g.name = name.to_string();
    g
}

/// `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`: one line per GPU,
/// "NVIDIA GeForce RTX 4090, 24564" (memory in MiB).
pub fn parse_nvidia_smi(text: &str, notes: &mut Vec<String>) -> Vec<Gpu> {
    text.lines()
        .filter_map(|line| {
            let (name, mib) = line.rsplit_once(',')?;
            let mib: u64 = mib.trim().parse().ok()?;
            Some(card(name.trim(), mib.saturating_mul(1 << 20), notes))
        })
        .collect()
}

/// `rocm-smi --showproductname --showmeminfo vram --json`: an object per card ("card0") with
/// "Card Series" (or "Card series", as releases spell it) and "VRAM Total Memory (B)".
pub fn parse_rocm_smi(text: &str, notes: &mut Vec<String>) -> Vec<Gpu> {
    let Ok(serde_json::Value::Object(cards)) = serde_json::from_str::<serde_json::Value>(text)
    else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = cards.keys().filter(|k| k.starts_with("card")).collect();
    keys.sort_by_key(|k| {
        k.trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse::<u64>()
            .unwrap_or(u64::MAX)
    });
    keys.into_iter()
        .filter_map(|k| {
            let fields = cards[k].as_object()?;
            let get = |want: &str| {
                fields
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(want))
                    .and_then(|(_, v)| v.as_str())
            };
            let name = get("Card Series").or_else(|| get("Card SKU"))?;
            let bytes: u64 = get("VRAM Total Memory (B)")?.trim().parse().ok()?;
            Some(card(name.trim(), bytes, notes))
        })
        .collect()
}

/// macOS on Apple silicon: `sysctl -n machdep.cpu.brand_string` ("Apple M2 Ultra") and
/// `sysctl -n hw.memsize` (bytes of unified memory). Metal lets the GPU use
/// `iogpu.wired_limit_mb` when it is set, else its recommendedMaxWorkingSetSize: 75% of the
/// memory above 36 GB on the macOS releases llama.cpp logged (ggml-org/llama.cpp#3213: 96 GB
/// → 73728 MiB; data/gpus.toml m2-ultra-192gb: 192 GB → 144 GiB). macOS 26 allows about 84% on
/// 128 GB machines (m4-max-128gb), so the 75% figure can be low there; it is stated.
fn apple(notes: &mut Vec<String>) -> Option<Gpu> {
    let brand = run("sysctl", &["-n", "machdep.cpu.brand_string"])?;
    let brand = brand.trim();
    if !brand.starts_with("Apple") {
        return None;
    }
    let memsize: u64 = run("sysctl", &["-n", "hw.memsize"])?.trim().parse().ok()?;
    let wired_mb: u64 = run("sysctl", &["-n", "iogpu.wired_limit_mb"])
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let (usable, how) = if wired_mb > 0 {
        (
            wired_mb.saturating_mul(1 << 20),
            format!("iogpu.wired_limit_mb = {wired_mb}"),
        )
    } else {
        (
            memsize / 4 * 3,
            "75% of it, macOS's default Metal working-set limit (raise it with sysctl iogpu.wired_limit_mb; macOS 26 allows about 84% on 128 GB machines, smaller Macs less)".to_string(),
        )
    };
    notes.push(format!(
        "{brand}: {} of unified memory; the GPU may use {} ({how})",
        vramplan_core::units::gib(memsize),
        vramplan_core::units::gib(usable)
    ));
    let mut g = Gpu::custom(usable);
    g.id = brand.to_string();
    g.name = format!("{brand} (unified memory)");
    g.vendor = "apple".into();
    Some(g)
}

/// The GPUs of this machine: nvidia-smi, then rocm-smi, then Apple silicon. None found is an
/// empty list.
pub fn detect_gpus() -> Detected {
    let mut notes = Vec::new();
    if let Some(text) = run(
        "nvidia-smi",
        &[
            "--query-gpu=name,memory.total",
            "--format=csv,noheader,nounits",
        ],
    ) {
        let gpus = parse_nvidia_smi(&text, &mut notes);
        if !gpus.is_empty() {
            return Detected {
                gpus,
                source: "nvidia-smi",
                notes,
            };
        }
    }
    if let Some(text) = run(
        "rocm-smi",
        &["--showproductname", "--showmeminfo", "vram", "--json"],
    ) {
        let gpus = parse_rocm_smi(&text, &mut notes);
        if !gpus.is_empty() {
            return Detected {
                gpus,
                source: "rocm-smi",
                notes,
            };
        }
    }
    if let Some(g) = apple(&mut notes) {
        return Detected {
            gpus: vec![g],
            source: "sysctl (Apple silicon)",
            notes,
        };
    }
    Detected {
        gpus: Vec::new(),
        source: "",
        notes,
    }
}

/// Host memory in bytes: MemTotal of /proc/meminfo (Linux, in kB = KiB), else `sysctl -n
/// hw.memsize` (macOS).
pub fn host_memory() -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        if let Some(kib) = text.lines().find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        }) {
            return Some(kib.saturating_mul(1024));
        }
    }
    run("sysctl", &["-n", "hw.memsize"]).and_then(|t| t.trim().parse().ok())
}

/// `--host-memory 64GiB`, or what this machine has.
pub fn host_memory_or(given: Option<&str>) -> Result<Option<u64>, String> {
    match given {
        Some(text) => parse_size(text)
            .map(Some)
            .map_err(|e| format!("--host-memory: {e}")),
        None => Ok(host_memory()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines_become_catalogue_cards() {
        let mut notes = Vec::new();
        let gpus = parse_nvidia_smi(
            "NVIDIA GeForce RTX 4090, 24564\nNVIDIA GeForce RTX 4090, 24564\n",
            &mut notes,
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].id, "rtx-4090");
        assert!(notes.is_empty());
        // A card the catalogue lacks keeps the memory nvidia-smi printed (MiB).
        let gpus = parse_nvidia_smi("NVIDIA GeForce RTX 3050, 8192", &mut notes);
        assert_eq!(gpus[0].memory_bytes, 8192 << 20);
        assert_eq!(notes.len(), 1);
        // Two memory sizes under one name: the 16 GB RTX 4060 Ti is the catalogue's card, the
        // 8 GB one keeps its own memory.
        let gpus = parse_nvidia_smi(
            "NVIDIA GeForce RTX 4060 Ti, 16380\nNVIDIA GeForce RTX 4060 Ti, 8188\n",
            &mut notes,
        );
        assert_eq!(gpus[0].id, "rtx-4060-ti-16gb");
        assert_eq!(gpus[1].memory_bytes, 8188 << 20);
        assert_eq!(notes.len(), 2, "{notes:?}");
    }

    #[test]
    fn rocm_smi_json_cards_in_order() {
        let text = r#"{"card1": {"Card Series": "AMD Instinct MI300X OAM", "VRAM Total Memory (B)": "206141652992"},
                      "card0": {"Card series": "AMD Instinct MI300X OAM", "VRAM Total Memory (B)": "206141652992"},
                      "system": {"Driver version": "6.7.0"}}"#;
        let mut notes = Vec::new();
        let gpus = parse_rocm_smi(text, &mut notes);
        assert_eq!(gpus.len(), 2);
        assert!(gpus.iter().all(|g| g.id == "mi300x"));
        assert!(parse_rocm_smi("not json", &mut notes).is_empty());
    }
}
