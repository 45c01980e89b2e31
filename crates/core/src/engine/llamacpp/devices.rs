//! llama.cpp on several devices: which device holds each layer's weights and KV cache under
//! `-ngl`, `-sm layer|row|none`, `-ts` and `-mg`, with MoE experts kept in host memory by
//! `--cpu-moe` / `--n-cpu-moe`, and the buffers each device (the host included) ends up with.
//!
//! Layer placement is src/llama-model.cpp `load_tensors` at ggml-org/llama.cpp@0c1e57098:
//! the split points are the running sums of `-ts` (or, without `-ts`, of each device's free
//! memory), normalised to 1; layer il (the output layer is il = n_layer) goes to the host when
//! il < n_layer + 1 − ngl, else to the first device whose split point exceeds
//! (il − i_gpu_start) / min(ngl, n_layer + 1) (`std::upper_bound`, in f32). `--n-cpu-moe N`
//! is common/arg.cpp's tensor override `blk\.i\.ffn_(up|down|gate|gate_up)_(ch|)exps=CPU` for
//! i < N; `--cpu-moe` for every layer.

use super::{
    compute_buffer_bytes, host_input_bytes, kv_caches, output_buffer_bytes, GgufWeights, KvCache,
    LlamaCppArgs, GPU_RESERVE_BYTES,
};
use crate::estimate::DeviceBuffers;
use crate::gpu::Gpu;
use crate::model::ModelDesc;

/// `-sm`: how weights are divided over several GPUs (common/arg.cpp `--split-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitMode {
    /// One GPU (`-mg`) holds every offloaded layer.
    None,
    /// Whole layers per GPU, by the split points (the default).
    #[default]
    Layer,
    /// Each matrix's rows divided over the GPUs by `-ts`; KV cache and compute on `-mg`.
    Row,
}

impl SplitMode {
    pub fn parse(text: &str) -> Result<SplitMode, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(SplitMode::None),
            "layer" => Ok(SplitMode::Layer),
            "row" => Ok(SplitMode::Row),
            other => Err(format!(
                "split mode '{other}': use none, layer or row (llama.cpp -sm)"
            )),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            SplitMode::None => "none",
            SplitMode::Layer => "layer",
            SplitMode::Row => "row",
        }
    }
}

/// Where `-ot` sends a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideDevice {
    Host,
    Gpu(usize),
}

/// One `-ot PATTERN=DEVICE` rule (common/arg.cpp `--override-tensor`; llama-model-loader.cpp
/// matches the patterns in order with `std::regex_search`, first match wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorOverride {
    pub pattern: String,
    pub device: OverrideDevice,
}

/// `-ot "blk\.(1[0-9])\.ffn_.*_exps\.=CPU,output=CUDA1"`: rules separated by commas, each a
/// regular expression and a buffer type (CPU, or a GPU as CUDA0, ROCm1, Vulkan0…).
pub fn parse_tensor_overrides(text: &str) -> Result<Vec<TensorOverride>, String> {
    let mut out = Vec::new();
    for rule in text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let Some((pattern, dev)) = rule.rsplit_once('=') else {
            return Err(format!(
                "-ot '{rule}': give PATTERN=DEVICE, e.g. blk\\.[0-9]+\\.ffn_.*_exps\\.=CPU"
            ));
        };
        regex::Regex::new(pattern)
            .map_err(|e| format!("-ot pattern '{pattern}' is not a regular expression: {e}"))?;
        let d = dev.trim();
        let device = if d.to_ascii_uppercase().starts_with("CPU") {
            OverrideDevice::Host
        } else {
            let digits = d.trim_start_matches(|c: char| !c.is_ascii_digit());
            match digits.parse::<usize>() {
                Ok(i) if !digits.is_empty() && d.len() > digits.len() => OverrideDevice::Gpu(i),
                _ => {
                    return Err(format!(
                        "-ot device '{d}': use CPU or a GPU as CUDA0, CUDA1, ROCm0…"
                    ))
                }
            }
        };
        out.push(TensorOverride {
            pattern: pattern.to_string(),
            device,
        });
        if out.len() > 256 {
            return Err("-ot: at most 256 rules".into());
        }
    }
    Ok(out)
}

/// `-ts 3,1` (llama.cpp also takes `3/1`): one non-negative proportion per GPU.
pub fn parse_tensor_split(text: &str) -> Result<Vec<f64>, String> {
    let parts: Vec<&str> = text.split([',', '/']).map(str::trim).collect();
    if parts.len() > 64 {
        return Err(format!("-ts has {} values; at most 64 GPUs", parts.len()));
    }
    parts
        .iter()
        .map(|p| {
            p.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("-ts '{text}': give proportions such as 3,1"))
        })
        .collect()
}

/// Where every layer (0..=n_layer, the last being the output layer) lives: `None` = host,
/// `Some(i)` = GPU i.
pub fn layer_devices(
    model: &ModelDesc,
    a: &LlamaCppArgs,
    gpus: &[Gpu],
    ngl: u64,
) -> Result<Vec<Option<usize>>, String> {
    let n = model.num_layers;
    let nd = gpus.len();
    if nd == 0 {
        return Ok(vec![None; n as usize + 1]);
    }
    if a.main_gpu >= nd {
        return Err(format!(
            "-mg {} names no GPU: there are {nd} (0..{})",
            a.main_gpu,
            nd - 1
        ));
    }
    let splits = split_points(a, gpus)?;
    let ngl = ngl.min(n + 1);
    let i_gpu_start = (n + 1).saturating_sub(ngl);
    let act = ngl.max(1);
    Ok((0..=n)
        .map(|il| {
            if il < i_gpu_start {
                return None;
            }
            if a.split_mode != SplitMode::Layer {
                return Some(a.main_gpu);
            }
            let x = (il - i_gpu_start) as f32 / act as f32;
            Some(splits.iter().position(|&s| s > x).unwrap_or(nd - 1))
        })
        .collect())
}

/// The normalised running sums of `-ts`, or of each GPU's free memory (an idle GPU: its
/// memory less the CUDA context reserve).
pub fn split_points(a: &LlamaCppArgs, gpus: &[Gpu]) -> Result<Vec<f32>, String> {
    let nd = gpus.len();
    if a.tensor_split.len() > nd {
        return Err(format!(
            "-ts has {} values for {nd} GPU{}: give one proportion per GPU",
            a.tensor_split.len(),
            if nd == 1 { "" } else { "s" }
        ));
    }
    if a.tensor_split.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return Err("-ts proportions must be non-negative numbers".into());
    }
    // llama.cpp reads -ts as floats; missing entries are 0.
    let given: Vec<f32> = (0..nd)
        .map(|i| a.tensor_split.get(i).copied().unwrap_or(0.0) as f32)
        .collect();
    let mut splits: Vec<f32> = if given.iter().all(|&x| x == 0.0) {
        gpus.iter()
            .map(|g| g.memory_bytes.saturating_sub(GPU_RESERVE_BYTES) as f32)
            .collect()
    } else {
        given
    };
    let mut sum = 0f32;
    for s in splits.iter_mut() {
        sum += *s;
        *s = sum;
    }
    if sum <= 0.0 {
        return Err("-ts gives every GPU a share of 0".into());
    }
    for s in splits.iter_mut() {
        *s /= sum;
    }
    Ok(splits)
}

/// Share of a layer's matrices each GPU holds under `-sm row` (`-ts`, else free memory).
fn row_shares(a: &LlamaCppArgs, gpus: &[Gpu]) -> Result<Vec<f64>, String> {
    let pts = split_points(a, gpus)?;
    let mut prev = 0f32;
    Ok(pts
        .iter()
        .map(|&p| {
            let s = (p - prev) as f64;
            prev = p;
            s
        })
        .collect())
}

/// Whether layer il keeps its experts in host memory (`--n-cpu-moe`, `--cpu-moe`).
pub fn experts_on_host(a: &LlamaCppArgs, il: u64) -> bool {
    il < a.n_cpu_moe
}

/// Every device's buffers for `ngl` offloaded layers: one entry per GPU, then the host.
pub fn device_buffers(
    model: &ModelDesc,
    weights: &GgufWeights,
    a: &LlamaCppArgs,
    gpus: &[Gpu],
    ngl: u64,
) -> Result<Vec<DeviceBuffers>, String> {
    let n = model.num_layers as usize;
    let place = layer_devices(model, a, gpus, ngl)?;
    let nd = gpus.len();
    let mut model_b = vec![0u64; nd + 1]; // index nd = host
    let mut kv_b = vec![0u64; nd + 1];
    let mut layers = vec![0u64; nd + 1];
    let host = nd;
    let shares = if a.split_mode == SplitMode::Row && nd > 0 {
        Some(row_shares(a, gpus)?)
    } else {
        None
    };
    model_b[host] += weights.input;
    for (il, dev) in place.iter().enumerate() {
        let bytes = if il == n {
            weights.output
        } else {
            weights.layers[il]
        };
        let experts = if il < n && experts_on_host(a, il as u64) {
            weights.experts.get(il).copied().unwrap_or(0)
        } else {
            0
        };
        model_b[host] += experts;
        let rest = bytes - experts.min(bytes);
        let d = dev.unwrap_or(host);
        layers[d] += 1;
        match (&shares, dev) {
            (Some(sh), Some(_)) => {
                // Rows of each matrix divided by -ts (src/llama-model.cpp split buffer type).
                let mut left = rest;
                for (i, s) in sh.iter().enumerate() {
                    let part = if i + 1 == nd {
                        left
                    } else {
                        ((rest as f64) * s) as u64
                    };
                    model_b[i] += part.min(left);
                    left -= part.min(left);
                }
            }
            _ => model_b[d] += rest,
        }
    }
    // Each device's layers' KV caches, one kv_caches call per device (the bytes are linear in
    // the layers, so this is the sum over its layers), and its recurrent layers' states: one
    // cell per sequence (llama-memory-recurrent.cpp, mem_size = max(1, n_seq_max)), on the
    // layer's device like the KV cache.
    let place_ref = &place;
    for d in 0..=nd {
        let on_d = || {
            (0..n)
                .filter(move |&il| place_ref[il].unwrap_or(host) == d)
                .map(|il| il as u64)
        };
        let kv: u64 = kv_caches(model, a, on_d()).iter().map(KvCache::bytes).sum();
        let states = super::recurrent_cache(model, a, on_d()).bytes();
        let kd = if a.offload_kqv { d } else { host };
        kv_b[kd] = kv_b[kd].saturating_add(kv).saturating_add(states);
    }
    apply_overrides(a, weights, &place, n, host, &mut model_b)?;
    let output_dev = place[n].unwrap_or(host);
    let any_gpu = place.iter().any(Option::is_some);
    let mut out = Vec::with_capacity(nd + 1);
    for (i, g) in gpus.iter().enumerate() {
        // Each GPU computes its layers' part of the graph (the phase estimate of the whole
        // graph's peak, with the logits where the output layer is).
        let compute = if layers[i] > 0 || (kv_b[i] > 0) {
            compute_buffer_bytes(model, a, output_dev == i, layers[i] > 0)
        } else {
            0
        };
        let used = model_b[i] + kv_b[i] + compute;
        out.push(DeviceBuffers {
            device: format!("CUDA{i}"),
            name: g.name.clone(),
            kind: "gpu",
            memory_bytes: g.memory_bytes,
            layers: layers[i],
            model_bytes: model_b[i],
            kv_bytes: kv_b[i],
            compute_bytes: compute,
            output_bytes: 0,
            reserve_bytes: GPU_RESERVE_BYTES,
            total_bytes: used + GPU_RESERVE_BYTES,
            fits: used + GPU_RESERVE_BYTES <= g.memory_bytes,
        });
    }
    let host_compute = if any_gpu {
        let cpu_side = compute_buffer_bytes(
            model,
            a,
            output_dev == host,
            layers[host] > 0 || a.n_cpu_moe > 0,
        );
        host_input_bytes(model, a).max(cpu_side)
    } else {
        super::cpu_graph_buffer_bytes(model, a)
            .unwrap_or_else(|| compute_buffer_bytes(model, a, true, true))
    };
    let output = output_buffer_bytes(model, a);
    let used = model_b[host] + kv_b[host] + host_compute + output;
    let memory = a.host_memory.unwrap_or(0);
    out.push(DeviceBuffers {
        device: "CPU".into(),
        name: "host memory".into(),
        kind: "host",
        memory_bytes: memory,
        layers: layers[host],
        model_bytes: model_b[host],
        kv_bytes: kv_b[host],
        compute_bytes: host_compute,
        output_bytes: output,
        reserve_bytes: 0,
        total_bytes: used,
        fits: a.host_memory.is_none_or(|m| used <= m),
    });
    Ok(out)
}

/// Moves the bytes of the tensors an `-ot` rule names from their layer's device to the rule's
/// (experts already in host memory by `--n-cpu-moe` start from the host).
fn apply_overrides(
    a: &LlamaCppArgs,
    weights: &GgufWeights,
    place: &[Option<usize>],
    n: usize,
    host: usize,
    model_b: &mut [u64],
) -> Result<(), String> {
    if a.tensor_overrides.is_empty() {
        return Ok(());
    }
    if weights.tensors.is_empty() {
        return Err("-ot names tensors: give a GGUF file, or -q with a llama.cpp file type (q4_k_m, q8_0…) so that the tensors have their names".into());
    }
    if a.split_mode == SplitMode::Row {
        return Err("-ot with -sm row is not modelled: use -sm layer".into());
    }
    let rules: Vec<(regex::Regex, &OverrideDevice)> = a
        .tensor_overrides
        .iter()
        .map(|o| {
            regex::Regex::new(&o.pattern)
                .map(|r| (r, &o.device))
                .map_err(|e| format!("-ot pattern '{}': {e}", o.pattern))
        })
        .collect::<Result<_, _>>()?;
    for t in &weights.tensors {
        let Some((_, dev)) = rules.iter().find(|(r, _)| r.is_match(&t.name)) else {
            continue;
        };
        let to = match dev {
            OverrideDevice::Host => host,
            OverrideDevice::Gpu(i) if *i < host => *i,
            OverrideDevice::Gpu(i) => {
                return Err(format!(
                    "-ot sends {} to GPU {i}, and there are {host}",
                    t.name
                ))
            }
        };
        let from = match t.place {
            super::gguf_layout::Place::Input => host,
            super::gguf_layout::Place::Output => place[n].unwrap_or(host),
            super::gguf_layout::Place::Layer(i) => {
                if t.name.contains("_exps.") && experts_on_host(a, i) {
                    host
                } else {
                    place.get(i as usize).copied().flatten().unwrap_or(host)
                }
            }
        };
        if from != to {
            model_b[from] = model_b[from].saturating_sub(t.bytes);
            model_b[to] += t.bytes;
        }
    }
    Ok(())
}

/// Whether llama.cpp runs the layers as a pipeline (llama-context.cpp: several devices, every
/// layer offloaded, `-sm layer`, KV offloaded, no tensor overrides): its scheduler then keeps
/// several copies of the graph's inputs, which the compute figures here do not count.
pub fn pipeline_parallel(model: &ModelDesc, a: &LlamaCppArgs, gpus: usize, ngl: u64) -> bool {
    gpus > 1
        && ngl > model.num_layers
        && a.split_mode == SplitMode::Layer
        && a.offload_kqv
        && a.n_cpu_moe == 0
        && a.tensor_overrides.is_empty()
}

/// Whether every device (the host too, when its memory is known) holds its buffers.
pub fn all_fit(devices: &[DeviceBuffers]) -> bool {
    devices.iter().all(|d| d.fits)
}

/// What `llama-fit-params` (common/fit.cpp, on by default in llama-server as `--fit on`)
/// chooses offline, for the given context: the largest -ngl whose buffers fit every GPU with
/// its margin (`--fit-target`, default 1 GiB per device); for a MoE model, every layer on the
/// GPUs with the fewest layers' experts in host memory; with `--n-cpu-moe` given, the largest
/// -ngl for those experts. Returns (ngl, n_cpu_moe). A device's free memory is taken as its
/// memory less the CUDA context reserve.
pub fn fit(
    model: &ModelDesc,
    weights: &GgufWeights,
    a: &LlamaCppArgs,
    gpus: &[Gpu],
    margin: u64,
) -> Result<(u64, u64), String> {
    let n = model.num_layers;
    let fits = |ngl: u64, cpu_moe: u64| -> Result<bool, String> {
        let t = LlamaCppArgs {
            n_cpu_moe: cpu_moe,
            ..a.clone()
        };
        Ok(device_buffers(model, weights, &t, gpus, ngl)?
            .iter()
            .filter(|d| d.kind == "gpu")
            // Free memory is what the card has beside the CUDA context (the reserve), and
            // the fit leaves the margin free on top of it.
            .all(|d| d.total_bytes + margin <= d.memory_bytes))
    };
    let moe = model.moe.is_some() && weights.experts.iter().any(|&e| e > 0);
    // Experts the user placed (--n-cpu-moe / --cpu-moe) stay placed: only -ngl is fitted.
    let given = (a.n_cpu_moe > 0).then_some(a.n_cpu_moe);
    if let Some(base) = given {
        for ngl in (0..=n + 1).rev() {
            if fits(ngl, base)? {
                return Ok((ngl, base));
            }
        }
        return Ok((0, base));
    }
    if moe && fits(n + 1, n)? {
        // Fewest layers with experts on the host: the count that fits is monotone.
        let (mut lo, mut hi) = (0u64, n);
        if fits(n + 1, 0)? {
            return Ok((n + 1, 0));
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(n + 1, mid)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        return Ok((n + 1, hi));
    }
    let base = if moe { n } else { 0 };
    for ngl in (0..=n + 1).rev() {
        if fits(ngl, base)? {
            return Ok((ngl, base));
        }
    }
    Ok((0, base))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;
    use crate::engine::llamacpp::TypeMix;
    use crate::ggml::GgmlType;
    use crate::units::MIB;

    fn q8() -> TypeMix {
        TypeMix::uniform(GgmlType::by_name("Q8_0").unwrap())
    }

    #[test]
    fn split_points_and_layer_devices_by_hand() {
        let cat = catalogue();
        let g = cat.gpu("rtx-4090").unwrap().clone();
        let a = LlamaCppArgs {
            tensor_split: vec![3.0, 1.0],
            ..LlamaCppArgs::default()
        };
        assert_eq!(
            split_points(&a, &[g.clone(), g.clone()]).unwrap(),
            vec![0.75, 1.0]
        );
        // 7 blocks + the output layer, -ngl 8: layer il at x = il / 8 goes to the first GPU
        // whose split point exceeds x: il 0..5 (x ≤ 0.625) on GPU 0, il 6 and the output (7)
        // on GPU 1.
        let mut m = cat.model("llama-3.1-8b").unwrap().clone();
        m.num_layers = 7;
        let d = layer_devices(&m, &a, &[g.clone(), g.clone()], 8).unwrap();
        assert_eq!(
            d,
            vec![
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(0),
                Some(1),
                Some(1)
            ]
        );
        // -ngl 3: i_gpu_start = 8 − 3 = 5; x = (il − 5) / 3: il 5, 6 (x 0, 0.33) GPU 0, il 7
        // (x 0.67) GPU 0 too (0.67 < 0.75).
        let d = layer_devices(&m, &a, &[g.clone(), g.clone()], 3).unwrap();
        assert_eq!(
            d,
            vec![None, None, None, None, None, Some(0), Some(0), Some(0)]
        );
        // -sm none -mg 1: every offloaded layer on GPU 1.
        let none = LlamaCppArgs {
            split_mode: SplitMode::None,
            main_gpu: 1,
            ..a.clone()
        };
        let d = layer_devices(&m, &none, &[g.clone(), g.clone()], 8).unwrap();
        assert!(d.iter().all(|x| *x == Some(1)));
        // Refusals: -mg past the GPUs, more -ts values than GPUs.
        let bad = LlamaCppArgs {
            main_gpu: 2,
            ..a.clone()
        };
        assert!(layer_devices(&m, &bad, &[g.clone(), g.clone()], 8).is_err());
        assert!(split_points(&a, &[g]).is_err());
        assert!(parse_tensor_split("3,x").is_err());
        assert_eq!(parse_tensor_split("3/1").unwrap(), vec![3.0, 1.0]);
    }

    #[test]
    fn two_gpus_split_evenly_by_hand() {
        // Llama-3.1-8B Q8_0, -c 8192, -ts 1,1, all 33 layers on 2 RTX 4090: x = il / 33 < 0.5
        // for il ≤ 16, so GPU 0 holds blocks 0..16 (17) and GPU 1 blocks 17..31 (15) and the
        // output layer. A block: 4096 × (2 × 4096 + 2 × 1024 + 3 × 14336) = 218,103,808
        // weights at 34/32 B = 231,735,296 B, plus two 4096-float norms (32,768 B) =
        // 231,768,064 B. KV per block: 8192 cells × 1024 × 2 (K, V) × 2 B = 32 MiB.
        let cat = catalogue();
        let m = cat.model("llama-3.1-8b").unwrap();
        let g = cat.gpu("rtx-4090").unwrap().clone();
        let w = GgufWeights::of(m, &q8());
        assert_eq!(w.layers[0], 231_768_064);
        let a = LlamaCppArgs {
            n_ctx: 8192,
            tensor_split: vec![1.0, 1.0],
            host_memory: Some(64 << 30),
            ..LlamaCppArgs::default()
        };
        let d = device_buffers(m, &w, &a, &[g.clone(), g.clone()], 33).unwrap();
        assert_eq!((d[0].layers, d[1].layers, d[2].layers), (17, 16, 0));
        assert_eq!(d[0].model_bytes, 17 * 231_768_064);
        assert_eq!(d[1].model_bytes, 15 * 231_768_064 + w.output);
        assert_eq!(
            (d[0].kv_bytes, d[1].kv_bytes),
            (17 * 32 * MIB, 15 * 32 * MIB)
        );
        // The host keeps token_embd (128,256 × 4096 at Q8_0 = 558,170,112 B) and the logits.
        assert_eq!(d[2].model_bytes, 558_170_112);
        assert_eq!(d[2].kv_bytes, 0);
        assert!(all_fit(&d));
        // Only the last GPU computes the logits; both compute their layers.
        assert!(d[1].compute_bytes > d[0].compute_bytes && d[0].compute_bytes > 0);
        // --no-kv-offload: the 32 blocks' KV (1 GiB) in host memory.
        let host_kv = LlamaCppArgs {
            offload_kqv: false,
            ..a.clone()
        };
        let d = device_buffers(m, &w, &host_kv, &[g.clone(), g.clone()], 33).unwrap();
        assert_eq!(
            (d[0].kv_bytes, d[1].kv_bytes, d[2].kv_bytes),
            (0, 0, 1 << 30)
        );
        // Row split: each block's bytes halved over the GPUs, the KV all on -mg 0.
        let row = LlamaCppArgs {
            split_mode: SplitMode::Row,
            ..a.clone()
        };
        let d = device_buffers(m, &w, &row, &[g.clone(), g], 33).unwrap();
        assert_eq!(d[0].kv_bytes, 32 * 32 * MIB);
        assert_eq!(
            d[0].model_bytes + d[1].model_bytes,
            32 * 231_768_064 + w.output
        );
        assert!(d[0].model_bytes.abs_diff(d[1].model_bytes) <= 33);
    }

    #[test]
    fn experts_on_the_host_and_host_memory_by_hand() {
        // Mixtral-8x7B Q8_0 (32 blocks of 8 experts, each 3 × 4096 × 14336 weights): an
        // expert tensor triple is 8 × 3 × 58,720,256 × 34/32 = 1,497,366,528 B per block.
        // --n-cpu-moe 10 moves blocks 0..9's experts to the host.
        let cat = catalogue();
        let m = cat.model("mixtral-8x7b").unwrap();
        let g = cat.gpu("h100").unwrap().clone();
        let w = GgufWeights::of(m, &q8());
        assert_eq!(w.experts[0], 1_497_366_528);
        let base = LlamaCppArgs {
            n_ctx: 4096,
            host_memory: Some(32 << 30),
            ..LlamaCppArgs::default()
        };
        let all = device_buffers(m, &w, &base, std::slice::from_ref(&g), 33).unwrap();
        let ten = LlamaCppArgs {
            n_cpu_moe: 10,
            ..base.clone()
        };
        let d = device_buffers(m, &w, &ten, std::slice::from_ref(&g), 33).unwrap();
        assert_eq!(all[0].model_bytes - d[0].model_bytes, 10 * 1_497_366_528);
        assert_eq!(d[1].model_bytes - all[1].model_bytes, 10 * 1_497_366_528);
        // 10 blocks of experts (13.9 GiB) and token_embd fit 32 GiB of host memory; 4 GiB does
        // not.
        assert!(d[1].fits);
        let small = LlamaCppArgs {
            host_memory: Some(4 << 30),
            ..ten
        };
        let d = device_buffers(m, &w, &small, std::slice::from_ref(&g), 33).unwrap();
        assert!(!d[1].fits && !all_fit(&d));
    }

    #[test]
    fn tensor_overrides_move_named_tensors() {
        // Mixtral-8x7B as a Q8_0 file (named tensors): -ot sending blocks 0..9's experts to
        // the CPU is --n-cpu-moe 10; sending output.weight to the host moves its bytes too.
        let cat = catalogue();
        let m = cat.model("mixtral-8x7b").unwrap();
        let g = cat.gpu("h100").unwrap().clone();
        let mix = TypeMix::parse_file_type("q8_0").unwrap();
        let w = GgufWeights::of(m, &mix);
        let ot = LlamaCppArgs {
            n_ctx: 4096,
            tensor_overrides: parse_tensor_overrides(r"blk\.[0-9]\.ffn_.*_exps\.=CPU").unwrap(),
            ..LlamaCppArgs::default()
        };
        let moe = LlamaCppArgs {
            n_ctx: 4096,
            n_cpu_moe: 10,
            ..LlamaCppArgs::default()
        };
        let a = device_buffers(m, &w, &ot, std::slice::from_ref(&g), 33).unwrap();
        let b = device_buffers(m, &w, &moe, std::slice::from_ref(&g), 33).unwrap();
        assert_eq!(
            (a[0].model_bytes, a[1].model_bytes),
            (b[0].model_bytes, b[1].model_bytes)
        );
        let out = LlamaCppArgs {
            tensor_overrides: parse_tensor_overrides("^output\\.weight$=CPU").unwrap(),
            ..moe.clone()
        };
        let c = device_buffers(m, &w, &out, std::slice::from_ref(&g), 33).unwrap();
        let head = w
            .tensors
            .iter()
            .find(|t| t.name == "output.weight")
            .unwrap()
            .bytes;
        // 32,000 × 4096 at Q8_0: a Q8_0 file keeps output.weight at Q8_0 (llama-quant.cpp
        // bumps the output to Q6_K only when the file's type is not Q8_0): 34 B per 32.
        assert_eq!(head, 32_000 * 4096 / 32 * 34);
        assert_eq!(c[1].model_bytes - b[1].model_bytes, head);
        // Unnamed weights (a uniform type) cannot be matched by name.
        let plain = GgufWeights::of(m, &q8());
        assert!(device_buffers(m, &plain, &ot, std::slice::from_ref(&g), 33)
            .unwrap_err()
            .contains("names tensors"));
        assert!(parse_tensor_overrides("x=GPU").is_err());
        assert!(parse_tensor_overrides("(=CPU").is_err());
    }

    #[test]
    fn fit_keeps_every_layer_and_the_fewest_experts_on_the_host() {
        // Mixtral-8x7B Q8_0 is ~46 GiB of experts: on one 24 GB card llama-fit-params keeps
        // every layer on the GPU and moves experts layer by layer until the GPU fits with
        // 1 GiB free; one layer fewer on the host does not fit.
        let cat = catalogue();
        let m = cat.model("mixtral-8x7b").unwrap();
        let g = cat.gpu("rtx-4090").unwrap().clone();
        let w = GgufWeights::of(m, &q8());
        let a = LlamaCppArgs {
            n_ctx: 4096,
            ..LlamaCppArgs::default()
        };
        let margin = super::super::FIT_TARGET_BYTES;
        let (ngl, cpu_moe) = fit(m, &w, &a, std::slice::from_ref(&g), margin).unwrap();
        assert_eq!(ngl, 33);
        assert!(cpu_moe > 0 && cpu_moe < 32, "{cpu_moe}");
        let used = |n: u64| {
            let t = LlamaCppArgs {
                n_cpu_moe: n,
                ..a.clone()
            };
            let d = device_buffers(m, &w, &t, std::slice::from_ref(&g), 33).unwrap();
            d[0].total_bytes + margin
        };
        assert!(used(cpu_moe) <= g.memory_bytes);
        assert!(used(cpu_moe - 1) > g.memory_bytes);
    }
}
