//! Compares llama.cpp's own reserve graphs (dumped by scripts/llamacpp_truth/graph_dump.c) with
//! the simulated ones (vramplan_core::engine::llamacpp::reserve_graph): the ggml-alloc
//! simulation's buffer for each dumped graph, and, given the GGUF file and the context's
//! settings, the first node where the simulated graph differs from llama.cpp's.
//!
//! cargo run -p vramplan-formats --example reserve_graph_diff -- DUMP [MODEL.gguf key=value...]
//! keys: n_ctx n_seq kv_unified n_ubatch type_k type_v flash_attn swa_full (as dump_graph.py).

use vramplan_core::engine::llamacpp::ggml_alloc::{self, Dtype, Graph, Layout, Op, Tensor};
use vramplan_core::engine::llamacpp::{self, FlashAttn, LlamaCppArgs};
use vramplan_core::KvDtype;

/// One dumped tensor's name and op text, beside the tensor.
struct Named {
    name: String,
    op: String,
}

/// A graph being read: its tensors by id (as dumped), its leafs and its nodes.
type Partial = (Vec<Option<(Tensor, Named)>>, Vec<usize>, Vec<usize>);

fn parse_graphs(text: &str) -> Vec<(Graph, Vec<Named>)> {
    let mut out = Vec::new();
    let mut cur: Option<Partial> = None;
    let finish = |c: Partial| {
        let (ts, leafs, nodes) = c;
        let (tensors, names): (Vec<Tensor>, Vec<Named>) = ts
            .into_iter()
            .map(|t| t.expect("every tensor id is dumped"))
            .unzip();
        (Graph::from_parts(tensors, leafs, nodes), names)
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"GRAPH") {
            if let Some(c) = cur.take() {
                out.push(finish(c));
            }
            cur = Some((Vec::new(), Vec::new(), Vec::new()));
            continue;
        }
        let Some((ts, leafs, nodes)) = cur.as_mut() else {
            continue;
        };
        let id: usize = f[1].parse().unwrap();
        let num = |i: usize| f[i].parse::<u64>().unwrap();
        let ne = [num(4), num(5), num(6), num(7)];
        let nb = [num(8), num(9), num(10), num(11)];
        let flags = num(12);
        let view_src: i64 = f[13].parse().unwrap();
        let ext = f[15] == "1";
        let dtype = match f[3] {
            "f32" => Dtype::F32,
            "f16" => Dtype::F16,
            "i32" => Dtype::I32,
            "i64" => Dtype::I64,
            other if ext || view_src >= 0 => {
                let _ = other;
                Dtype::F16
            }
            other => panic!("compute tensor of type {other}: {line}"),
        };
        let contiguous = dtype.size() == nb[0]
            && nb[1] == nb[0] * ne[0]
            && nb[2] == nb[1] * ne[1]
            && nb[3] == nb[2] * ne[2];
        let srcs: Vec<usize> = f[17..].iter().map(|x| x.parse().unwrap()).collect();
        let t = Tensor {
            op: Op::from_desc(f[2]),
            srcs,
            ne,
            dtype,
            layout: if contiguous || !ext && view_src < 0 {
                Layout::Contiguous
            } else {
                Layout::Strided(id)
            },
            view_src: (view_src >= 0).then_some(view_src as usize),
            view_offs: num(14),
            input: flags & 1 != 0,
            output: flags & 2 != 0,
            external: ext,
        };
        if ts.len() <= id {
            ts.resize_with(id + 1, || None);
        }
        ts[id] = Some((
            t,
            Named {
                name: f[16].to_string(),
                op: f[2].to_string(),
            },
        ));
        if f[0] == "L" {
            leafs.push(id);
        } else {
            nodes.push(id);
        }
    }
    if let Some(c) = cur.take() {
        out.push(finish(c));
    }
    out
}

fn args_from(kv: &[String]) -> LlamaCppArgs {
    let mut a = LlamaCppArgs {
        n_gpu_layers: Some(0),
        ..LlamaCppArgs::default()
    };
    for s in kv {
        let (k, v) = s.split_once('=').expect("key=value");
        let b = || matches!(v, "1" | "true" | "True");
        match k {
            "n_ctx" => a.n_ctx = v.parse().unwrap(),
            "n_seq" => a.n_seq = v.parse().unwrap(),
            "kv_unified" => a.kv_unified = b(),
            "n_ubatch" => a.n_ubatch = v.parse().unwrap(),
            "type_k" => a.type_k = KvDtype::parse(v).unwrap(),
            "type_v" => a.type_v = KvDtype::parse(v).unwrap(),
            "flash_attn" => a.flash_attn = FlashAttn::parse(v).unwrap(),
            "swa_full" => a.swa_full = b(),
            _ => panic!("unknown key {k}"),
        }
    }
    a
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let text = std::fs::read_to_string(&argv[0]).expect("dump file");
    let graphs = parse_graphs(&text);
    for (i, (g, _)) in graphs.iter().enumerate() {
        let b = ggml_alloc::buffer_size(g, 32);
        println!(
            "dump graph {i}: {} nodes, {} leafs, simulated buffer {b} B = {:.2} MiB",
            g.nodes.len(),
            g.leafs.len(),
            b as f64 / 1048576.0
        );
    }
    let Some(path) = argv.get(1) else { return };
    let file = vramplan_formats::inspect(path).expect("GGUF");
    let model = vramplan_formats::to_model_desc(&file).expect("model").desc;
    let a = args_from(&argv[2..]);
    if std::env::var_os("SHOW_LAYERS").is_some() {
        for i in 0..model.num_layers {
            println!("layer {i}: {:?}", model.layer(i));
        }
    }
    let Some(ours) = llamacpp::cpu_reserve_graph(&model, &a) else {
        println!("no simulated builder for {}", model.model_type);
        return;
    };
    let b = ggml_alloc::buffer_size(&ours, 32);
    println!(
        "simulated graph: {} nodes, {} leafs, buffer {b} B = {:.2} MiB",
        ours.nodes.len(),
        ours.leafs.len(),
        b as f64 / 1048576.0
    );
    let (theirs, names) = &graphs[0];
    let n = theirs.nodes.len().max(ours.nodes.len());
    let show = |g: &Graph, i: usize, names: Option<&Vec<Named>>| -> String {
        let Some(&id) = g.nodes.get(i) else {
            return "-".into();
        };
        let t = &g.tensors[id];
        let srcs: Vec<String> = t
            .srcs
            .iter()
            .map(|&s| format!("{:?}{:?}", g.tensors[s].op, g.tensors[s].ne))
            .collect();
        let label = names.map_or(String::new(), |n| format!("{} {} ", n[id].op, n[id].name));
        format!(
            "{label}{:?} {:?} {:?} <- {}",
            t.op,
            t.ne,
            t.dtype,
            srcs.join(", ")
        )
    };
    // Each node as its op, shape and sources, the sources named by position: N<i> a node,
    // I<j> the j-th input leaf, W an external leaf (weights, caches).
    let key = |g: &Graph, i: usize| -> Option<String> {
        let &id = g.nodes.get(i)?;
        let pos_n: std::collections::HashMap<usize, usize> =
            g.nodes.iter().enumerate().map(|(k, &v)| (v, k)).collect();
        let inputs: Vec<usize> = g
            .leafs
            .iter()
            .copied()
            .filter(|&l| g.tensors[l].input)
            .collect();
        let t = &g.tensors[id];
        let srcs: Vec<String> = t
            .srcs
            .iter()
            .map(|s| match pos_n.get(s) {
                Some(k) => format!("N{k}"),
                None => match inputs.iter().position(|x| x == s) {
                    Some(j) => format!("I{j}"),
                    None => "W".into(),
                },
            })
            .collect();
        Some(format!(
            "{:?} {:?} {}{} [{}]",
            t.op,
            t.ne,
            if t.output { "out " } else { "" },
            if t.view_src.is_some() { "view" } else { "" },
            srcs.join(",")
        ))
    };
    for i in 0..n {
        if key(theirs, i) != key(&ours, i) {
            println!("first difference at node {i}:");
            for j in i.saturating_sub(4)..(i + 6).min(n) {
                println!(
                    "  llama.cpp {j:4}: {} | {}",
                    key(theirs, j).unwrap_or_default(),
                    show(theirs, j, Some(names))
                );
                println!("  simulated {j:4}: {}", key(&ours, j).unwrap_or_default());
            }
            return;
        }
    }
    println!("graphs agree node for node");
}
