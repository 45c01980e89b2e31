//! ggml's compute graph and its graph allocator (ggml/src/ggml.c `ggml_visit_parents`,
//! ggml/src/ggml-alloc.c `ggml_gallocr_alloc_graph_impl` and `ggml_dyn_tallocr`), simulated to
//! find the buffer a reserve graph needs: the largest offset the allocator reaches while it
//! places each tensor in the best-fitting free block and frees it after its last consumer.
//!
//! Written by hand: no crate models ggml-alloc, and the figure depends on its exact order of
//! allocation, reuse and freeing (a 4 MiB difference in a mask moves the logits by 12 MiB).

/// Index of a tensor in a [`Graph`].
pub type Id = usize;

/// Element types of the tensors a reserve graph allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    I32,
    I64,
}

impl Dtype {
    pub fn size(self) -> u64 {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::I64 => 8,
        }
    }
}

/// ggml's operations, as far as the allocator cares: which ones may write into their input
/// (ggml-alloc.c `ggml_op_can_inplace`), and which make views (no memory of their own). Unary
/// ops (GELU, SiLU, tanh, sigmoid, softplus…) are one op to ggml (GGML_OP_UNARY), and so are the
/// gated units (GGML_OP_GLU: SwiGLU, GeGLU, SwiGLU-OAI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A leaf: an input the application fills, or a tensor with its own buffer (weights, KV cache).
    None,
    GetRows,
    RmsNorm,
    Norm,
    Mul,
    Add,
    AddId,
    Sub,
    Div,
    Sqr,
    Sqrt,
    Clamp,
    Fill,
    Scale,
    Unary,
    Rope,
    SoftMax,
    MulMat,
    MulMatId,
    Glu,
    Cont,
    Cpy,
    Concat,
    Repeat,
    Mean,
    SumRows,
    ArgSort,
    TopK,
    FlashAttn,
    SetRows,
    SsmConv,
    SsmScan,
    GatedDeltaNet,
    /// reshape, view, permute, transpose.
    View,
    /// Any other op that makes a new tensor and never works in place.
    Other,
}

impl Op {
    /// ggml-alloc.c `ggml_op_can_inplace` at 0c1e57098: FILL, SCALE, ADD, ADD_ID, SUB, MUL,
    /// DIV, SQR, SQRT, UNARY, ROPE, RMS_NORM, CLAMP, SOFT_MAX among the ops modelled here.
    fn can_inplace(self) -> bool {
        matches!(
            self,
            Op::Fill
                | Op::Scale
                | Op::Add
                | Op::AddId
                | Op::Sub
                | Op::Mul
                | Op::Div
                | Op::Sqr
                | Op::Sqrt
                | Op::Unary
                | Op::Rope
                | Op::RmsNorm
                | Op::Clamp
                | Op::SoftMax
        )
    }

    /// The op of ggml's `ggml_op_desc` (the unary or GLU kind for those), as graph dumps print it.
    pub fn from_desc(desc: &str) -> Op {
        match desc {
            "NONE" => Op::None,
            "GET_ROWS" => Op::GetRows,
            "RMS_NORM" => Op::RmsNorm,
            "NORM" => Op::Norm,
            "MUL" => Op::Mul,
            "ADD" => Op::Add,
            "ADD_ID" => Op::AddId,
            "SUB" => Op::Sub,
            "DIV" => Op::Div,
            "SQR" => Op::Sqr,
            "SQRT" => Op::Sqrt,
            "CLAMP" => Op::Clamp,
            "FILL" => Op::Fill,
            "SCALE" => Op::Scale,
            "ROPE" => Op::Rope,
            "SOFT_MAX" => Op::SoftMax,
            "MUL_MAT" => Op::MulMat,
            "MUL_MAT_ID" => Op::MulMatId,
            "CONT" => Op::Cont,
            "CPY" => Op::Cpy,
            "CONCAT" => Op::Concat,
            "REPEAT" => Op::Repeat,
            "MEAN" => Op::Mean,
            "SUM_ROWS" => Op::SumRows,
            "ARGSORT" => Op::ArgSort,
            "TOP_K" => Op::TopK,
            "FLASH_ATTN_EXT" => Op::FlashAttn,
            "SET_ROWS" => Op::SetRows,
            "SSM_CONV" => Op::SsmConv,
            "SSM_SCAN" => Op::SsmScan,
            "GATED_DELTA_NET" => Op::GatedDeltaNet,
            "VIEW" | "RESHAPE" | "PERMUTE" | "TRANSPOSE" => Op::View,
            "ABS" | "SGN" | "NEG" | "STEP" | "TANH" | "ELU" | "RELU" | "SIGMOID" | "GELU"
            | "GELU_QUICK" | "SILU" | "HARDSWISH" | "HARDSIGMOID" | "EXP" | "EXPM1"
            | "SOFTPLUS" | "GELU_ERF" | "XIELU" | "FLOOR" | "CEIL" | "ROUND" | "TRUNC" => Op::Unary,
            "REGLU" | "GEGLU" | "SWIGLU" | "SWIGLU_OAI" | "GEGLU_ERF" | "GEGLU_QUICK" => Op::Glu,
            _ => Op::Other,
        }
    }
}

/// Memory layout beyond type and shape: contiguous, or strided (a permuted view, which
/// `ggml_are_same_layout` never matches with a contiguous tensor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Contiguous,
    Strided(Id),
}

#[derive(Debug, Clone)]
pub struct Tensor {
    pub op: Op,
    pub srcs: Vec<Id>,
    pub ne: [u64; 4],
    pub dtype: Dtype,
    pub layout: Layout,
    /// The tensor whose memory a view uses (always the root: ggml folds views of views).
    pub view_src: Option<Id>,
    pub view_offs: u64,
    /// GGML_TENSOR_FLAG_INPUT: allocated before the nodes run.
    pub input: bool,
    /// GGML_TENSOR_FLAG_OUTPUT: never freed, never reused in place.
    pub output: bool,
    /// Has memory outside the compute buffer (weights, KV cache, and views of them).
    pub external: bool,
}

impl Tensor {
    /// ggml_nbytes of a contiguous tensor (what ggml_backend_buft_get_alloc_size returns on the
    /// CPU), saturating.
    pub fn bytes(&self) -> u64 {
        self.ne
            .iter()
            .fold(self.dtype.size(), |a, &n| a.saturating_mul(n))
    }
}

/// A compute graph: tensors, and the node and leaf lists in ggml's order.
#[derive(Debug, Default)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Id>,
    pub leafs: Vec<Id>,
    visited: Vec<bool>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    fn push(&mut self, t: Tensor) -> Id {
        self.tensors.push(t);
        self.visited.push(false);
        self.tensors.len() - 1
    }

    /// A contiguous f32 tensor of `op` over `srcs`, with no flags and its own memory: what
    /// every constructor below starts from.
    fn tensor(op: Op, srcs: Vec<Id>, ne: [u64; 4]) -> Tensor {
        Tensor {
            op,
            srcs,
            ne,
            dtype: Dtype::F32,
            layout: Layout::Contiguous,
            view_src: None,
            view_offs: 0,
            input: false,
            output: false,
            external: false,
        }
    }

    /// An input tensor (ggml_new_tensor + ggml_set_input).
    pub fn input(&mut self, dtype: Dtype, ne: [u64; 4]) -> Id {
        self.push(Tensor {
            dtype,
            input: true,
            ..Self::tensor(Op::None, Vec::new(), ne)
        })
    }

    /// A tensor with its own buffer: a weight or a KV-cache tensor.
    pub fn external(&mut self, dtype: Dtype, ne: [u64; 4]) -> Id {
        self.push(Tensor {
            dtype,
            external: true,
            ..Self::tensor(Op::None, Vec::new(), ne)
        })
    }

    /// A new contiguous result of `op` over `srcs` (in ggml's src order).
    pub fn op(&mut self, op: Op, srcs: &[Id], ne: [u64; 4]) -> Id {
        self.push(Self::tensor(op, srcs.to_vec(), ne))
    }

    /// A result shaped like `x` (unary, binary and in-place-able ops).
    pub fn like(&mut self, op: Op, x: Id, others: &[Id]) -> Id {
        let mut srcs = vec![x];
        srcs.extend_from_slice(others);
        let ne = self.tensors[x].ne;
        self.op(op, &srcs, ne)
    }

    /// A view of `x` at offset 0: `strided` for permutes and transposes; a reshape keeps the
    /// source's layout.
    pub fn view(&mut self, x: Id, ne: [u64; 4], strided: bool) -> Id {
        let src = &self.tensors[x];
        let t = Tensor {
            dtype: src.dtype,
            layout: src.layout,
            view_src: Some(src.view_src.unwrap_or(x)),
            view_offs: src.view_offs,
            external: src.external,
            ..Self::tensor(Op::View, vec![x], ne)
        };
        let id = self.push(t);
        if strided {
            self.tensors[id].layout = Layout::Strided(id);
        }
        id
    }

    /// ggml_set_rows: writes `rows` into `dst` (a KV-cache tensor) at `idxs`; the result is a view
    /// of the cache, its sources b, c, a in ggml's order.
    pub fn set_rows(&mut self, dst: Id, rows: Id, idxs: Id) -> Id {
        let d = &self.tensors[dst];
        let t = Tensor {
            dtype: d.dtype,
            view_src: Some(d.view_src.unwrap_or(dst)),
            external: true,
            ..Self::tensor(Op::SetRows, vec![rows, idxs, dst], d.ne)
        };
        self.push(t)
    }

    /// A graph given tensor by tensor (a dump of llama.cpp's own graph, to check the allocator
    /// and the builders against): `leafs` and `nodes` index `tensors`, in ggml's order.
    pub fn from_parts(tensors: Vec<Tensor>, leafs: Vec<Id>, nodes: Vec<Id>) -> Graph {
        let visited = vec![true; tensors.len()];
        Graph {
            tensors,
            nodes,
            leafs,
            visited,
        }
    }

    /// An op that writes into `target`'s memory and returns a view of it (ggml's `*_inplace`
    /// ops, ggml_cpy into a destination, the recurrent ops' state writes): no memory of its own.
    pub fn op_into(&mut self, op: Op, srcs: &[Id], target: Id, ne: [u64; 4]) -> Id {
        let d = &self.tensors[target];
        let t = Tensor {
            dtype: d.dtype,
            layout: d.layout,
            view_src: Some(d.view_src.unwrap_or(target)),
            view_offs: d.view_offs,
            external: d.external,
            ..Self::tensor(op, srcs.to_vec(), ne)
        };
        self.push(t)
    }

    /// A new contiguous tensor of another element type (ggml_cast, argsort's I32 indices).
    pub fn op_typed(&mut self, op: Op, srcs: &[Id], ne: [u64; 4], dtype: Dtype) -> Id {
        let id = self.op(op, srcs, ne);
        self.tensors[id].dtype = dtype;
        id
    }

    pub fn set_output(&mut self, t: Id) {
        self.tensors[t].output = true;
    }

    /// ggml_build_forward_expand: appends `root` and everything it depends on, parents first in
    /// src order (ggml.c `ggml_visit_parents`, here without recursion so deep graphs are safe).
    pub fn expand(&mut self, root: Id) {
        if self.visited[root] {
            return;
        }
        let mut stack: Vec<(Id, usize)> = vec![(root, 0)];
        self.visited[root] = true;
        while let Some((t, next)) = stack.pop() {
            let srcs = &self.tensors[t].srcs;
            if let Some((i, &s)) = srcs
                .iter()
                .enumerate()
                .skip(next)
                .find(|(_, s)| !self.visited[**s])
            {
                stack.push((t, i + 1));
                self.visited[s] = true;
                stack.push((s, 0));
                continue;
            }
            if self.tensors[t].op == Op::None {
                self.leafs.push(t);
            } else {
                self.nodes.push(t);
            }
        }
    }
}

/// ggml-alloc.c `ggml_dyn_tallocr`: free blocks sorted by offset, the last one unbounded;
/// best fit among the others, else the end; freed blocks merge with their neighbours.
struct DynAllocator {
    alignment: u64,
    free: Vec<(u64, u64)>,
    max_size: u64,
}

impl DynAllocator {
    fn new(alignment: u64) -> DynAllocator {
        DynAllocator {
            alignment,
            free: vec![(0, u64::MAX / 2)],
            max_size: 0,
        }
    }

    fn aligned(&self, size: u64) -> u64 {
        size.div_ceil(self.alignment).saturating_mul(self.alignment)
    }

    fn alloc(&mut self, size: u64) -> u64 {
        let size = self.aligned(size);
        let last = self.free.len() - 1;
        // `<=`: among equal blocks the last one wins, as in ggml_dyn_tallocr_alloc.
        let mut best: Option<usize> = None;
        for (i, b) in self.free[..last].iter().enumerate() {
            if b.1 >= size && best.is_none_or(|j| b.1 <= self.free[j].1) {
                best = Some(i);
            }
        }
        let i = best.unwrap_or(last);
        let offset = self.free[i].0;
        self.free[i].0 = offset.saturating_add(size);
        self.free[i].1 -= size.min(self.free[i].1);
        if self.free[i].1 == 0 && i != last {
            self.free.remove(i);
        }
        self.max_size = self.max_size.max(offset.saturating_add(size));
        offset
    }

    fn release(&mut self, offset: u64, size: u64) {
        let size = self.aligned(size);
        if size == 0 {
            return;
        }
        for i in 0..self.free.len() {
            let (b_off, b_size) = self.free[i];
            if b_off.saturating_add(b_size) == offset {
                self.free[i].1 = b_size.saturating_add(size);
                if i + 1 < self.free.len()
                    && self.free[i].0.saturating_add(self.free[i].1) == self.free[i + 1].0
                {
                    self.free[i].1 = self.free[i].1.saturating_add(self.free[i + 1].1);
                    self.free.remove(i + 1);
                }
                return;
            }
            if offset.saturating_add(size) == b_off {
                self.free[i] = (offset, b_size.saturating_add(size));
                if i > 0 && self.free[i - 1].0.saturating_add(self.free[i - 1].1) == offset {
                    self.free[i - 1].1 = self.free[i - 1].1.saturating_add(self.free[i].1);
                    self.free.remove(i);
                }
                return;
            }
        }
        let at = self.free.partition_point(|b| b.0 < offset);
        self.free.insert(at, (offset, size));
    }
}

/// Per-tensor bookkeeping of ggml-alloc.c (`struct hash_node`).
#[derive(Debug, Clone, Copy, Default)]
struct State {
    children: u32,
    views: u32,
    allocated: bool,
    offset: u64,
}

/// The compute buffer ggml-alloc reserves for `g` (ggml_gallocr_reserve → the allocator's
/// max_size): leafs first, then inputs, then each node after its parents, parents freed once
/// their last child and view ran, in-place reuse of a parent that has no other consumer.
pub fn buffer_size(g: &Graph, alignment: u64) -> u64 {
    let mut st = vec![State::default(); g.tensors.len()];
    let mut a = DynAllocator::new(alignment);

    let allocate = |t: Id, st: &mut Vec<State>, a: &mut DynAllocator| {
        let tensor = &g.tensors[t];
        if tensor.external || st[t].allocated || tensor.view_src.is_some() {
            return;
        }
        st[t].allocated = true;
        if tensor.op.can_inplace() {
            for &p in &tensor.srcs {
                let parent = &g.tensors[p];
                // Only a tensor this allocator placed itself (never a view: views are not
                // "allocated" in ggml-alloc's bookkeeping), not an output, with the same layout.
                if !st[p].allocated || parent.output {
                    continue;
                }
                if (parent.dtype, parent.ne, parent.layout)
                    != (tensor.dtype, tensor.ne, tensor.layout)
                {
                    continue;
                }
                if st[p].children == 1 && st[p].views == 0 {
                    st[t].offset = st[p].offset;
                    st[p].allocated = false;
                    return;
                }
            }
        }
        st[t].offset = a.alloc(tensor.bytes());
    };
    let free = |t: Id, st: &mut Vec<State>, a: &mut DynAllocator| {
        if g.tensors[t].output {
            return;
        }
        a.release(st[t].offset, g.tensors[t].bytes());
        st[t].allocated = false;
    };

    for &l in &g.leafs {
        allocate(l, &mut st, &mut a);
    }
    for &n in &g.nodes {
        let node = &g.tensors[n];
        if let Some(v) = node.view_src {
            st[v].views += 1;
        }
        if node.input {
            allocate(n, &mut st, &mut a);
        }
        for &s in &node.srcs {
            st[s].children += 1;
            if g.tensors[s].input {
                allocate(s, &mut st, &mut a);
            }
        }
    }
    for &n in &g.nodes {
        for &p in &g.tensors[n].srcs {
            allocate(p, &mut st, &mut a);
        }
        allocate(n, &mut st, &mut a);
        for &p in &g.tensors[n].srcs {
            st[p].children -= 1;
            if st[p].children == 0 && st[p].views == 0 {
                match g.tensors[p].view_src {
                    Some(v) => {
                        st[v].views -= 1;
                        if st[v].views == 0 && st[v].children == 0 && st[v].allocated {
                            free(v, &mut st, &mut a);
                        }
                    }
                    None if st[p].allocated => free(p, &mut st, &mut a),
                    None => {}
                }
            }
        }
    }
    a.max_size
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: [u64; 4] = [1024, 1, 1, 1]; // 4 KiB of f32

    #[test]
    fn a_chain_reuses_memory_in_place_and_frees_behind_it() {
        // x (input, 4 KiB) → a = mul_mat(x) (4 KiB) → b = scale(a) in place → c = mul_mat(b).
        // x stays (inputs are leafs, freed after their last child: here after a), so:
        // x@0, a@4K, b reuses a, x freed → hole [0,4K), c fits the hole → peak 8 KiB.
        let mut g = Graph::new();
        let x = g.input(Dtype::F32, F);
        let a = g.op(Op::MulMat, &[x], F);
        let b = g.like(Op::Scale, a, &[]);
        let c = g.op(Op::MulMat, &[b], F);
        g.expand(c);
        assert_eq!(g.nodes, vec![a, b, c]);
        assert_eq!(g.leafs, vec![x]);
        assert_eq!(buffer_size(&g, 32), 8192);
    }

    #[test]
    fn a_view_keeps_its_source_alive() {
        // x@0 (4 KiB input); v = view(x) is x's only child, so x would be free once v ran, but
        // the view holds it until y = mul_mat(v) is placed: y goes to 4K, the peak is 8 KiB
        // (4 KiB if the view did not count).
        let mut g = Graph::new();
        let x = g.input(Dtype::F32, F);
        let v = g.view(x, F, false);
        let y = g.op(Op::MulMat, &[v], F);
        g.expand(y);
        assert_eq!(buffer_size(&g, 32), 8192);
    }

    #[test]
    fn an_output_is_never_overwritten_in_place() {
        // x@0 (4 KiB) → a = mul_mat(x), 8 KiB at 4K; x freed leaves a 4 KiB hole. b = scale(a)
        // reuses a in place (peak 12 KiB) unless a is an output: then b needs 8 KiB, which the
        // hole cannot give, and goes to 12K (peak 20 KiB).
        for (output, peak) in [(false, 12 * 1024), (true, 20 * 1024)] {
            let mut g = Graph::new();
            let x = g.input(Dtype::F32, F);
            let a = g.op(Op::MulMat, &[x], [2048, 1, 1, 1]);
            if output {
                g.set_output(a);
            }
            let b = g.like(Op::Scale, a, &[]);
            g.expand(b);
            assert_eq!(buffer_size(&g, 32), peak, "output={output}");
        }
    }

    #[test]
    fn best_fit_picks_the_smallest_hole_and_sizes_are_aligned() {
        // Two holes (8 KiB at 0, 4 KiB at 12K) after freeing; a 4 KiB tensor takes the 4 KiB hole
        // (best fit), so an 8 KiB one still fits at 0: the peak stays 16 KiB (+ the 40-byte input
        // padded to 64).
        let mut a = DynAllocator::new(32);
        let big = a.alloc(8192);
        let keep = a.alloc(4096);
        let small = a.alloc(4096);
        let keep2 = a.alloc(40);
        assert_eq!((big, keep, small, keep2), (0, 8192, 12288, 16384));
        a.release(big, 8192);
        a.release(small, 4096);
        assert_eq!(a.alloc(4096), 12288);
        assert_eq!(a.alloc(8192), 0);
        assert_eq!(a.max_size, 16384 + 64);
    }

    #[test]
    fn deep_graphs_do_not_recurse() {
        // 200,000 chained scales: iterative DFS, one in-place chain, peak = one tensor.
        let mut g = Graph::new();
        let mut x = g.input(Dtype::F32, F);
        let first = g.op(Op::MulMat, &[x], F);
        x = first;
        for _ in 0..200_000 {
            x = g.like(Op::Scale, x, &[]);
        }
        g.expand(x);
        assert_eq!(g.nodes.len(), 200_001);
        assert_eq!(buffer_size(&g, 32), 2 * 4096);
    }
}
