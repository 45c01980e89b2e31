//! PagedAttention's block allocator (Kwon et al., SOSP 2023, §4): the pool is cut into
//! fixed-size blocks, each sequence has a block table, and a sequence takes a new block only
//! when its last one is full, so the only waste is the unused tail of each last block.
//!
//! With sharing on (`paged-sharing`), blocks are reference-counted and copied on write (§4.4):
//! - parallel samples share their prompt's full blocks; the partial last prompt block is
//!   copied for each sample when it writes its first token;
//! - beams fork every step (a beam's block table is copied from its parent's, bumping
//!   reference counts) and copy a shared partial last block before writing into it;
//! - requests with the same shared-prefix id share the prefix's full blocks, cached while
//!   any running request uses them.
//!
//! Which beam survives a step is not in any trace, so it is drawn at random: each of the W
//! new beams picks its parent uniformly among the W old ones (the neutral Wright–Fisher
//! model, seeded from `SimConfig::seed`).
//!
//! Speed: all sequences of a request have the same length, and all running requests grow by
//! one token per step, so a request needs a new block exactly when `(kv_base + step) % bs ==
//! 0` for a constant `kv_base`. Requests are kept in `bs` buckets by that phase, and a step
//! adds its bucket's sequence count to `owed`: blocks taken but whose ids are drawn from the
//! free stack only when the table is read (swap-out, audit); a finished request returns its
//! owed blocks as a count. A step is O(1); block ids are dense u32 on a Vec stack; there is
//! no map in the hot loop. Beam groups, whose tables fork every step, are kept eagerly.

use super::{tail_empty, AdmitSpec, Admitted, Handle, KvAllocator, Occupancy, QuietModel};
use crate::workload::SharedPrefix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum GroupState {
    #[default]
    Free,
    Running,
    Swapped,
}

/// A request's allocation.
#[derive(Debug, Default)]
struct Group {
    state: GroupState,
    /// Block table of each sequence (the first `prefix_blocks` entries are the shared prefix).
    tables: Vec<Vec<u32>>,
    /// Beam search with sharing: forks every step, not in a phase bucket.
    forks: bool,
    /// Shared prefix registered in the prefix cache.
    prefix: Option<SharedPrefix>,
    prefix_blocks: u32,
    /// Tokens per sequence = kv_base + steps_done while running.
    kv_base: i64,
    /// Position in its phase bucket or in `fork_groups`.
    pos: u32,
    /// Blocks the coming `grow` needs for this request (forking groups only).
    pending_demand: u32,
    /// While swapped out: tokens per sequence and the block tables in group-local ids.
    swapped_kv: u32,
    swapped_unique: u32,
}

#[derive(Debug, Default)]
struct PrefixEntry {
    blocks: Vec<u32>,
    /// Running requests referencing these blocks.
    users: u32,
}

/// Paged KV-cache allocator, with or without copy-on-write sharing.
#[derive(Debug)]
pub struct PagedAllocator {
    block_size: u32,
    total_blocks: u32,
    watermark_blocks: u32,
    sharing: bool,
    block_bytes: u64,
    free: Vec<u32>,
    refcount: Vec<u32>,
    groups: Vec<Group>,
    free_handles: Vec<Handle>,
    /// Running non-forking requests by phase `kv_base mod bs`.
    buckets: Vec<Vec<Handle>>,
    /// Sequences in each bucket.
    bucket_seqs: Vec<u64>,
    /// Running forking (beam, shared) requests.
    fork_groups: Vec<Handle>,
    prefixes: Vec<PrefixEntry>,
    cpu_blocks_total: u64,
    cpu_blocks_used: u64,
    /// Index of the step in progress (== number of steps finished).
    steps_done: u64,
    /// `grow` has run in the step in progress.
    grown: bool,
    /// Blocks taken by phase-bucket requests whose ids have not been drawn yet.
    owed: u64,
    /// `bucket_for_step(steps_done)`, kept incrementally (a 64-bit division per step was a
    /// sixth of the run time).
    current_bucket: usize,
    running_seqs: u64,
    logical_tokens: u64,
    logical_blocks: u64,
    fork_demand: u64,
    allocated_total: u64,
    freed_total: u64,
    /// First inconsistency seen (a double free); reported by `audit`.
    corrupt: Option<String>,
    rng: ChaCha8Rng,
    /// Scratch: generation stamps and group-local ids per block (swap-out), spare tables.
    stamp: Vec<u32>,
    stamp_gen: u32,
    local_id: Vec<u32>,
    spare_tables: Vec<Vec<u32>>,
    scratch_ids: Vec<u32>,
    fork_tables: Vec<Vec<u32>>,
    fork_claim: Vec<u32>,
}

impl PagedAllocator {
    /// A pool of `total_blocks` blocks of `block_size` tokens (`block_bytes` each), keeping
    /// `watermark` of them free at admission, with a CPU swap pool of `cpu_swap_bytes`.
    pub fn new(
        total_blocks: u32,
        block_size: u32,
        block_bytes: u64,
        watermark: f64,
        cpu_swap_bytes: u64,
        sharing: bool,
        seed: u64,
    ) -> PagedAllocator {
        let block_size = block_size.max(1);
        PagedAllocator {
            block_size,
            total_blocks,
            // vLLM: watermark_blocks = int(watermark * num_gpu_blocks).
            watermark_blocks: (watermark * f64::from(total_blocks)) as u32,
            sharing,
            block_bytes,
            // Pop order gives block 0 first (purely cosmetic: ids are interchangeable).
            free: (0..total_blocks).rev().collect(),
            refcount: vec![0; total_blocks as usize],
            groups: Vec::new(),
            free_handles: Vec::new(),
            buckets: vec![Vec::new(); block_size as usize],
            bucket_seqs: vec![0; block_size as usize],
            fork_groups: Vec::new(),
            prefixes: Vec::new(),
            cpu_blocks_total: cpu_swap_bytes / block_bytes.max(1),
            cpu_blocks_used: 0,
            steps_done: 0,
            grown: false,
            owed: 0,
            current_bucket: 0,
            running_seqs: 0,
            logical_tokens: 0,
            logical_blocks: 0,
            fork_demand: 0,
            allocated_total: 0,
            freed_total: 0,
            corrupt: None,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_bea3),
            stamp: vec![0; total_blocks as usize],
            stamp_gen: 0,
            local_id: vec![0; total_blocks as usize],
            spare_tables: Vec::new(),
            scratch_ids: Vec::new(),
            fork_tables: Vec::new(),
            fork_claim: Vec::new(),
        }
    }

    /// Blocks in the pool.
    pub fn total_blocks(&self) -> u32 {
        self.total_blocks
    }

    /// Blocks kept free at admission.
    pub fn watermark_blocks(&self) -> u32 {
        self.watermark_blocks
    }

    /// CPU swap blocks in use.
    pub fn cpu_blocks_used(&self) -> u64 {
        self.cpu_blocks_used
    }

    #[inline]
    fn pop_block(&mut self) -> u32 {
        // Callers check the free count first; an empty pop would be a scheduler bug.
        let b = self
            .free
            .pop()
            .expect("paged pool checked before allocation");
        self.refcount[b as usize] = 1;
        self.allocated_total += 1;
        b
    }

    #[inline]
    fn decref(&mut self, b: u32) {
        let rc = &mut self.refcount[b as usize];
        if *rc == 0 {
            if self.corrupt.is_none() {
                self.corrupt = Some(format!("block {b} freed twice"));
            }
            return;
        }
        *rc -= 1;
        if *rc == 0 {
            self.free.push(b);
            self.freed_total += 1;
        }
    }

    /// A fresh generation for `stamp` (reset on wrap-around so old stamps cannot match).
    fn next_stamp(&mut self) -> u32 {
        self.stamp_gen = self.stamp_gen.wrapping_add(1);
        if self.stamp_gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.stamp_gen = 1;
        }
        self.stamp_gen
    }

    fn take_table(&mut self) -> Vec<u32> {
        let mut t = self.spare_tables.pop().unwrap_or_default();
        t.clear();
        t
    }

    fn new_handle(&mut self) -> Handle {
        self.free_handles.pop().unwrap_or_else(|| {
            self.groups.push(Group::default());
            (self.groups.len() - 1) as Handle
        })
    }

    #[inline]
    fn phase_of(&self, kv_base: i64) -> usize {
        kv_base.rem_euclid(i64::from(self.block_size)) as usize
    }

    /// Bucket whose requests need a block in step `step`: `(kv_base + step) % bs == 0`.
    #[inline]
    fn bucket_for_step(&self, step: u64) -> usize {
        let bs = u64::from(self.block_size);
        ((bs - step % bs) % bs) as usize
    }

    /// Tokens per sequence of a running request now (including this step's token once
    /// `grow` has run).
    fn kv_of(&self, g: &Group) -> u64 {
        (g.kv_base + self.steps_done as i64 + i64::from(self.grown)) as u64
    }

    /// Gives a phase-bucket request the block ids its growth has been counting in `owed`.
    fn materialize(&mut self, h: Handle) {
        let g = &self.groups[h as usize];
        if g.forks || g.state != GroupState::Running {
            return;
        }
        let target = self.kv_of(g).div_ceil(u64::from(self.block_size)) as usize;
        for j in 0..self.groups[h as usize].tables.len() {
            while self.groups[h as usize].tables[j].len() < target {
                let b = self.pop_block();
                self.groups[h as usize].tables[j].push(b);
                self.owed -= 1;
            }
        }
    }

    /// Puts a running request where `begin_step` will find it.
    fn place(&mut self, h: Handle) {
        let g = &self.groups[h as usize];
        if g.forks {
            self.groups[h as usize].pos = self.fork_groups.len() as u32;
            self.fork_groups.push(h);
        } else {
            let phase = self.phase_of(g.kv_base);
            let n = g.tables.len() as u64;
            self.groups[h as usize].pos = self.buckets[phase].len() as u32;
            self.buckets[phase].push(h);
            self.bucket_seqs[phase] += n;
        }
    }

    fn unplace(&mut self, h: Handle) {
        let (forks, pos, phase, n, pending) = {
            let g = &self.groups[h as usize];
            (
                g.forks,
                g.pos as usize,
                self.phase_of(g.kv_base),
                g.tables.len() as u64,
                g.pending_demand,
            )
        };
        let list = if forks {
            &mut self.fork_groups
        } else {
            self.bucket_seqs[phase] -= n;
            &mut self.buckets[phase]
        };
        list.swap_remove(pos);
        if pos < list.len() {
            let moved = list[pos];
            self.groups[moved as usize].pos = pos as u32;
        }
        if forks {
            // Preempted between begin_step and grow: its growth is no longer due.
            self.fork_demand -= u64::from(pending);
            self.groups[h as usize].pending_demand = 0;
        }
    }

    /// Drops every reference a running request holds. Blocks still counted in `owed` are
    /// returned as a count: their ids never left the free stack. With `keep_tables` the
    /// tables keep their (now stale) ids for the caller to rewrite; otherwise they are
    /// recycled.
    fn drop_refs(&mut self, h: Handle, keep_tables: bool) {
        let kv = self.kv_of(&self.groups[h as usize]);
        let target = kv.div_ceil(u64::from(self.block_size));
        let mut tables = std::mem::take(&mut self.groups[h as usize].tables);
        let n = tables.len() as u64;
        for t in tables.iter_mut() {
            let owed_here = target.saturating_sub(t.len() as u64);
            self.owed -= owed_here;
            self.logical_blocks -= t.len() as u64 + owed_here;
            for &b in t.iter() {
                self.decref(b);
            }
        }
        self.running_seqs -= n;
        self.logical_tokens -= n * kv;
        if !keep_tables {
            for mut t in tables.drain(..) {
                t.clear();
                self.spare_tables.push(t);
            }
        }
        self.groups[h as usize].tables = tables;
        if let Some(p) = self.groups[h as usize].prefix {
            let e = &mut self.prefixes[p.id as usize];
            e.users -= 1;
            if e.users == 0 {
                // Its blocks' counts reached zero with the last user's tables.
                e.blocks.clear();
            }
        }
    }

    /// Beam-search fork: every new beam copies the table of a parent drawn uniformly.
    fn fork(&mut self, h: Handle) {
        let w = self.groups[h as usize].tables.len();
        self.scratch_ids.clear();
        for _ in 0..w {
            let parent = self.rng.random_range(0..w) as u32;
            self.scratch_ids.push(parent);
        }
        // The first child of a parent takes its table; later children copy it (one more
        // reference per block); parents without children drop theirs.
        let mut old = std::mem::take(&mut self.groups[h as usize].tables);
        let mut new = std::mem::take(&mut self.fork_tables);
        new.clear();
        self.fork_claim.clear();
        self.fork_claim.resize(w, u32::MAX);
        for j in 0..w {
            let parent = self.scratch_ids[j] as usize;
            if self.fork_claim[parent] == u32::MAX {
                self.fork_claim[parent] = j as u32;
                new.push(Vec::new());
            } else {
                let mut t = self.take_table();
                t.extend_from_slice(&old[parent]);
                for &b in &t {
                    self.refcount[b as usize] += 1;
                }
                new.push(t);
            }
        }
        for (i, mut t) in old.drain(..).enumerate() {
            match self.fork_claim[i] {
                u32::MAX => {
                    for &b in &t {
                        self.decref(b);
                    }
                    t.clear();
                    self.spare_tables.push(t);
                }
                child => new[child as usize] = t,
            }
        }
        self.groups[h as usize].tables = new;
        self.fork_tables = old;
    }

    /// Blocks that appending one token to every sequence of request `h` takes, given that its
    /// sequences hold `kv` tokens: a new block each if the last ones are full, otherwise one
    /// copy per extra holder of a shared partial last block.
    fn append_demand(&mut self, h: Handle, kv: u64) -> u32 {
        let n = self.groups[h as usize].tables.len() as u32;
        if kv.is_multiple_of(u64::from(self.block_size)) {
            return n;
        }
        let gen = self.next_stamp();
        let mut distinct = 0;
        for t in &self.groups[h as usize].tables {
            let tail = *t.last().expect("a sequence holds at least one token") as usize;
            if self.stamp[tail] != gen {
                self.stamp[tail] = gen;
                distinct += 1;
            }
        }
        n - distinct
    }

    /// Appends one token to every sequence of request `h` holding `kv` tokens (copy on
    /// write for shared partial last blocks). Counts blocks but not tokens.
    fn append_token(&mut self, h: Handle, kv: u64) {
        let n = self.groups[h as usize].tables.len();
        if kv.is_multiple_of(u64::from(self.block_size)) {
            for j in 0..n {
                let b = self.pop_block();
                self.groups[h as usize].tables[j].push(b);
            }
            self.logical_blocks += n as u64;
        } else {
            for j in 0..n {
                let tail = *self.groups[h as usize].tables[j].last().expect("non-empty");
                if self.refcount[tail as usize] > 1 {
                    let b = self.pop_block();
                    self.refcount[tail as usize] -= 1;
                    *self.groups[h as usize].tables[j]
                        .last_mut()
                        .expect("non-empty") = b;
                }
            }
        }
    }

    /// Blocks (prefix, group-shared, private per sequence) an admission of `spec` takes.
    fn admission_plan(&self, spec: &AdmitSpec) -> (u32, bool, u32, u32) {
        let bs = self.block_size;
        let prefix_blocks = match (self.sharing, spec.prefix) {
            (true, Some(p)) => p.tokens / bs,
            _ => 0,
        };
        let resident = prefix_blocks > 0
            && spec
                .prefix
                .and_then(|p| self.prefixes.get(p.id as usize))
                .is_some_and(|e| e.users > 0);
        let group_blocks = if self.sharing && spec.num_seqs > 1 {
            spec.prompt / bs - prefix_blocks
        } else {
            0
        };
        let private_tokens = spec.kv_after - (prefix_blocks + group_blocks) * bs;
        let private_blocks = private_tokens.div_ceil(bs);
        (prefix_blocks, resident, group_blocks, private_blocks)
    }

    /// Appends this step's token to every beam (copy on write of shared partial blocks).
    fn grow_forks(&mut self) {
        for i in 0..self.fork_groups.len() {
            let h = self.fork_groups[i];
            let kv = self.kv_of(&self.groups[h as usize]);
            self.append_token(h, kv);
            self.groups[h as usize].pending_demand = 0;
        }
        self.fork_demand = 0;
    }

    /// Forks every beam group and computes the blocks their tokens will take this step.
    fn begin_forks(&mut self) {
        self.fork_demand = 0;
        for i in 0..self.fork_groups.len() {
            let h = self.fork_groups[i];
            self.fork(h);
            let kv = self.kv_of(&self.groups[h as usize]);
            let d = self.append_demand(h, kv);
            self.groups[h as usize].pending_demand = d;
            self.fork_demand += u64::from(d);
        }
    }
}

impl KvAllocator for PagedAllocator {
    fn capacity_slots(&self) -> u64 {
        u64::from(self.total_blocks) * u64::from(self.block_size)
    }

    fn can_ever_fit(&self, spec: &AdmitSpec) -> bool {
        // Worst case: no sharing at all at the final length; admission keeps the watermark.
        let worst = u64::from(spec.num_seqs) * u64::from(spec.final_len.div_ceil(self.block_size));
        worst + u64::from(self.watermark_blocks) <= u64::from(self.total_blocks)
    }

    #[inline]
    fn begin_step(&mut self, step: u64) {
        debug_assert_eq!(step, self.steps_done);
        if self.fork_groups.is_empty() {
            return;
        }
        self.begin_forks();
    }

    #[inline]
    fn decode_demand(&self) -> u64 {
        self.bucket_seqs[self.current_bucket] + self.fork_demand
    }

    #[inline]
    fn free_units(&self) -> u64 {
        self.free.len() as u64 - self.owed
    }

    fn free_memory_only_shrinks(&self) -> bool {
        // A beam fork can drop a beam's last reference to a block.
        self.fork_groups.is_empty()
    }

    #[inline]
    fn grow(&mut self) {
        // Phase-bucket requests that cross a block boundary take a block each, counted in
        // `owed`; their ids are drawn when a table is read (O(1) per step, no per-block work
        // in the hot loop).
        let demand = self.bucket_seqs[self.current_bucket];
        self.owed += demand;
        self.logical_blocks += demand;
        if !self.fork_groups.is_empty() {
            self.grow_forks();
        }
        self.logical_tokens += self.running_seqs;
        self.grown = true;
    }

    fn try_admit(&mut self, spec: &AdmitSpec) -> Option<Admitted> {
        let (prefix_blocks, resident, group_blocks, private_blocks) = self.admission_plan(spec);
        let n = spec.num_seqs;
        let need = u64::from(if resident { 0 } else { prefix_blocks })
            + u64::from(group_blocks)
            + u64::from(n) * u64::from(private_blocks);
        if self.free_units() < need + u64::from(self.watermark_blocks) {
            return None;
        }
        let h = self.new_handle();
        // Shared prefix: reuse the cached blocks or fill a new cache entry.
        let mut shared = self.take_table();
        let prefix = if prefix_blocks > 0 { spec.prefix } else { None };
        if let Some(p) = prefix {
            if self.prefixes.len() <= p.id as usize {
                self.prefixes
                    .resize_with(p.id as usize + 1, PrefixEntry::default);
            }
            if !resident {
                let mut blocks = std::mem::take(&mut self.prefixes[p.id as usize].blocks);
                for _ in 0..prefix_blocks {
                    let b = self.pop_block();
                    // The cache entry holds no reference; only block tables do.
                    self.refcount[b as usize] = 0;
                    blocks.push(b);
                }
                self.prefixes[p.id as usize].blocks = blocks;
            }
            self.prefixes[p.id as usize].users += 1;
            shared.extend_from_slice(&self.prefixes[p.id as usize].blocks);
        }
        for _ in 0..group_blocks {
            let b = self.pop_block();
            self.refcount[b as usize] = 0;
            shared.push(b);
        }
        let mut tables = std::mem::take(&mut self.groups[h as usize].tables);
        debug_assert!(tables.is_empty());
        for _ in 0..n {
            let mut t = self.take_table();
            t.extend_from_slice(&shared);
            for &b in &shared {
                self.refcount[b as usize] += 1;
            }
            for _ in 0..private_blocks {
                let b = self.pop_block();
                t.push(b);
            }
            tables.push(t);
        }
        shared.clear();
        self.spare_tables.push(shared);
        let per_seq_blocks = u64::from(prefix_blocks + group_blocks + private_blocks);
        self.logical_blocks += u64::from(n) * per_seq_blocks;
        self.logical_tokens += u64::from(n) * u64::from(spec.kv_after);
        self.running_seqs += u64::from(n);
        let g = &mut self.groups[h as usize];
        g.state = GroupState::Running;
        g.tables = tables;
        g.forks = self.sharing && spec.beam && n > 1;
        g.prefix = prefix;
        g.prefix_blocks = prefix_blocks;
        // kv after this step = kv_base + (steps_done + 1).
        g.kv_base = i64::from(spec.kv_after) - self.steps_done as i64 - 1;
        g.pending_demand = 0;
        self.place(h);
        Some(Admitted {
            handle: h,
            cached_prompt_tokens: if resident {
                prefix_blocks * self.block_size
            } else {
                0
            },
        })
    }

    fn release(&mut self, h: Handle) {
        debug_assert_eq!(self.groups[h as usize].state, GroupState::Running);
        self.unplace(h);
        self.drop_refs(h, false);
        let g = &mut self.groups[h as usize];
        g.state = GroupState::Free;
        g.prefix = None;
        self.free_handles.push(h);
    }

    fn swap_out(&mut self, h: Handle) -> Option<u64> {
        debug_assert_eq!(self.groups[h as usize].state, GroupState::Running);
        self.materialize(h);
        // Number the request's distinct blocks after its prefix (group-local ids keep the
        // sharing between its samples/beams for the swap-in).
        let gen = self.next_stamp();
        let skip = self.groups[h as usize].prefix_blocks as usize;
        let mut unique = 0u32;
        for t in &self.groups[h as usize].tables {
            for &b in &t[skip..] {
                if self.stamp[b as usize] != gen {
                    self.stamp[b as usize] = gen;
                    self.local_id[b as usize] = unique;
                    unique += 1;
                }
            }
        }
        // The prefix is copied out too: it may be evicted before the swap-in.
        let cpu_need = u64::from(unique) + u64::from(self.groups[h as usize].prefix_blocks);
        if self.cpu_blocks_used + cpu_need > self.cpu_blocks_total {
            return None;
        }
        let kv = self.kv_of(&self.groups[h as usize]);
        self.unplace(h);
        // Drop the GPU references, then rewrite the tables in place as local ids.
        self.drop_refs(h, true);
        let mut tables = std::mem::take(&mut self.groups[h as usize].tables);
        for t in tables.iter_mut() {
            t.drain(..skip);
            for b in t.iter_mut() {
                *b = self.local_id[*b as usize];
            }
        }
        self.groups[h as usize].tables = tables;
        let g = &mut self.groups[h as usize];
        g.state = GroupState::Swapped;
        g.swapped_kv = kv as u32;
        g.swapped_unique = unique;
        self.cpu_blocks_used += cpu_need;
        Some(cpu_need * self.block_bytes)
    }

    fn try_swap_in(&mut self, h: Handle) -> Option<u64> {
        debug_assert_eq!(self.groups[h as usize].state, GroupState::Swapped);
        let bs = u64::from(self.block_size);
        let (kv, unique, prefix, prefix_blocks, n) = {
            let g = &self.groups[h as usize];
            (
                u64::from(g.swapped_kv),
                g.swapped_unique,
                g.prefix,
                g.prefix_blocks,
                g.tables.len() as u32,
            )
        };
        let resident = prefix
            .and_then(|p| self.prefixes.get(p.id as usize))
            .is_some_and(|e| e.users > 0);
        // Growth of this step: a block per sequence at a block boundary, else one copy per
        // extra holder of a shared partial last block.
        let growth = if kv % bs == 0 {
            n
        } else {
            self.scratch_ids.clear();
            self.scratch_ids.resize(unique as usize, 0);
            let mut distinct = 0;
            for t in &self.groups[h as usize].tables {
                let tail = *t.last().expect("suffix holds the partial tail") as usize;
                if self.scratch_ids[tail] == 0 {
                    self.scratch_ids[tail] = 1;
                    distinct += 1;
                }
            }
            n - distinct
        };
        let copy_in = u64::from(unique) + u64::from(if resident { 0 } else { prefix_blocks });
        let need = copy_in + u64::from(growth);
        if self.free_units() < need + u64::from(self.watermark_blocks) {
            return None;
        }
        // Map local ids to fresh GPU blocks (reference counts are added per table entry).
        self.scratch_ids.clear();
        for _ in 0..unique {
            let b = self.pop_block();
            self.refcount[b as usize] = 0;
            self.scratch_ids.push(b);
        }
        let mut prefix_table = self.take_table();
        if let Some(p) = prefix {
            let e = &mut self.prefixes[p.id as usize];
            if !resident {
                let mut blocks = std::mem::take(&mut e.blocks);
                for _ in 0..prefix_blocks {
                    let b = self.pop_block();
                    self.refcount[b as usize] = 0;
                    blocks.push(b);
                }
                self.prefixes[p.id as usize].blocks = blocks;
            }
            self.prefixes[p.id as usize].users += 1;
            prefix_table.extend_from_slice(&self.prefixes[p.id as usize].blocks);
        }
        // Rewrite the tables in place: prefix blocks, then local ids mapped to GPU blocks.
        let mut tables = std::mem::take(&mut self.groups[h as usize].tables);
        for t in tables.iter_mut() {
            for l in t.iter_mut() {
                *l = self.scratch_ids[*l as usize];
            }
            t.splice(0..0, prefix_table.iter().copied());
            for &b in t.iter() {
                self.refcount[b as usize] += 1;
            }
            self.logical_blocks += t.len() as u64;
        }
        prefix_table.clear();
        self.spare_tables.push(prefix_table);
        self.cpu_blocks_used -= u64::from(unique) + u64::from(prefix_blocks);
        self.running_seqs += u64::from(n);
        self.logical_tokens += u64::from(n) * (kv + 1);
        let steps_done = self.steps_done as i64;
        let g = &mut self.groups[h as usize];
        g.tables = tables;
        g.state = GroupState::Running;
        // kv before this step's token = kv_base + steps_done.
        g.kv_base = kv as i64 - steps_done;
        g.pending_demand = 0;
        self.append_token(h, kv);
        self.place(h);
        Some(copy_in * self.block_bytes)
    }

    #[inline]
    fn end_step(&mut self) {
        self.steps_done += 1;
        self.grown = false;
        // bucket_for_step(s + 1) = bucket_for_step(s) - 1 (mod bs).
        self.current_bucket = match self.current_bucket {
            0 => self.block_size as usize - 1,
            b => b - 1,
        };
        debug_assert_eq!(self.current_bucket, self.bucket_for_step(self.steps_done));
    }

    fn demand_cycle(&self) -> (&[u64], usize) {
        (&self.bucket_seqs, self.current_bucket)
    }

    fn quiet_model(&self) -> QuietModel {
        let bs = i64::from(self.block_size);
        QuietModel {
            start: self.occupancy().as_array(),
            // A token fills a slot of a last block; a block adds bs empty slots to the tails.
            per_token: [1, 0, -1, 0, 0, 0],
            per_block: [0, 0, bs, 0, 1, 1],
        }
    }

    fn advance_quiet(&mut self, steps: u64, blocks: u64) {
        debug_assert!(self.fork_groups.is_empty() && !self.grown);
        debug_assert!(blocks <= self.free_units());
        self.owed += blocks;
        self.logical_blocks += blocks;
        self.logical_tokens += steps * self.running_seqs;
        self.steps_done += steps;
        let bs = u64::from(self.block_size);
        // The bucket index moves back one per step.
        self.current_bucket = ((self.current_bucket as u64 + bs - steps % bs) % bs) as usize;
        debug_assert_eq!(self.current_bucket, self.bucket_for_step(self.steps_done));
    }

    #[inline]
    fn occupancy(&self) -> Occupancy {
        let bs = u64::from(self.block_size);
        let physical = u64::from(self.total_blocks) - self.free_units();
        // Shared blocks are always full and partial last blocks private (copy on write), so
        // the waste is the sum of the sequences' last-block tails.
        let empty = self.logical_blocks * bs - self.logical_tokens;
        Occupancy {
            token_slots: physical * bs - empty,
            reserved_slots: 0,
            internal_slots: empty,
            slack_slots: 0,
            logical_blocks: self.logical_blocks,
            physical_blocks: physical,
        }
    }

    #[inline]
    fn running_seqs(&self) -> u64 {
        self.running_seqs
    }

    #[inline]
    fn logical_tokens(&self) -> u64 {
        self.logical_tokens
    }

    fn audit(&mut self) -> Result<(), String> {
        if let Some(c) = &self.corrupt {
            return Err(c.clone());
        }
        // Read every table: draw the ids still owed.
        for h in 0..self.groups.len() {
            self.materialize(h as Handle);
        }
        if self.owed != 0 {
            return Err(format!(
                "{} blocks owed after materializing every table",
                self.owed
            ));
        }
        let bs = u64::from(self.block_size);
        let total = self.total_blocks as usize;
        // Recount references from the running block tables.
        let mut refs = vec![0u32; total];
        let (mut seqs, mut tokens, mut blocks, mut cpu) = (0u64, 0u64, 0u64, 0u64);
        for (h, g) in self.groups.iter().enumerate() {
            match g.state {
                GroupState::Free => {}
                GroupState::Swapped => {
                    cpu += u64::from(g.swapped_unique) + u64::from(g.prefix_blocks);
                }
                GroupState::Running => {
                    let kv = self.kv_of(g);
                    for t in &g.tables {
                        if t.len() as u64 != kv.div_ceil(bs) {
                            return Err(format!(
                                "request {h}: table has {} blocks for {kv} tokens",
                                t.len()
                            ));
                        }
                        for &b in t {
                            refs[b as usize] += 1;
                        }
                        if tail_empty(kv, bs) != 0 {
                            // A partial last block must be private after every step.
                            let tail = *t.last().expect("non-empty") as usize;
                            if self.refcount[tail] != 1 {
                                return Err(format!("request {h}: shared partial block {tail}"));
                            }
                        }
                    }
                    seqs += g.tables.len() as u64;
                    tokens += g.tables.len() as u64 * kv;
                    blocks += g.tables.iter().map(|t| t.len() as u64).sum::<u64>();
                    if let Some(p) = g.prefix {
                        let e = &self.prefixes[p.id as usize];
                        if e.users == 0 || e.blocks.len() != g.prefix_blocks as usize {
                            return Err(format!("request {h}: stale prefix entry {}", p.id));
                        }
                    }
                }
            }
        }
        if refs != self.refcount {
            let b = (0..total)
                .find(|&b| refs[b] != self.refcount[b])
                .unwrap_or(0);
            return Err(format!(
                "block {b}: {} table references but reference count {}",
                refs[b], self.refcount[b]
            ));
        }
        let mut on_free_list = vec![false; total];
        for &b in &self.free {
            if on_free_list[b as usize] {
                return Err(format!("block {b} twice on the free list"));
            }
            on_free_list[b as usize] = true;
            if refs[b as usize] != 0 {
                return Err(format!("block {b} is free but owned"));
            }
        }
        let owned = refs.iter().filter(|&&r| r > 0).count();
        if owned + self.free.len() != total {
            return Err(format!(
                "{owned} owned + {} free != {total} blocks (leak)",
                self.free.len()
            ));
        }
        if self.allocated_total - self.freed_total != owned as u64 {
            return Err(format!(
                "{} allocations - {} frees != {owned} owned blocks",
                self.allocated_total, self.freed_total
            ));
        }
        if seqs != self.running_seqs
            || tokens != self.logical_tokens
            || blocks != self.logical_blocks
        {
            return Err(format!(
                "counters (seqs {}, tokens {}, blocks {}) != recount ({seqs}, {tokens}, {blocks})",
                self.running_seqs, self.logical_tokens, self.logical_blocks
            ));
        }
        if cpu != self.cpu_blocks_used || cpu > self.cpu_blocks_total {
            return Err(format!(
                "CPU pool: counter {} recount {cpu} capacity {}",
                self.cpu_blocks_used, self.cpu_blocks_total
            ));
        }
        for (id, e) in self.prefixes.iter().enumerate() {
            if e.users == 0 && !e.blocks.is_empty() {
                return Err(format!("prefix {id} keeps blocks without users"));
            }
        }
        let bucket_total: u64 = self.bucket_seqs.iter().sum();
        let fork_total: u64 = self
            .fork_groups
            .iter()
            .map(|&h| self.groups[h as usize].tables.len() as u64)
            .sum();
        if bucket_total + fork_total != self.running_seqs {
            return Err("bucket membership does not match the running sequences".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: u32, beam: bool, prompt: u32, kv_after: u32, final_len: u32) -> AdmitSpec {
        AdmitSpec {
            num_seqs: n,
            beam,
            prompt,
            kv_after,
            final_len,
            prefix: None,
        }
    }

    fn pool(blocks: u32, sharing: bool) -> PagedAllocator {
        // Block size 4, 1 B/token so bytes = blocks × 4; no watermark; CPU pool 64 blocks.
        PagedAllocator::new(blocks, 4, 4, 0.0, 256, sharing, 1)
    }

    /// Runs one step with no admissions: begin, grow, end.
    fn step(a: &mut PagedAllocator) {
        let s = a.steps_done;
        a.begin_step(s);
        assert!(a.decode_demand() <= a.free_units());
        a.grow();
        a.end_step();
        a.audit().unwrap();
    }

    #[test]
    fn blocks_are_taken_only_at_block_boundaries() {
        let mut a = pool(10, false);
        // Prompt 6 + first token = 7 tokens → 2 blocks (4 + 3), 1 empty slot.
        a.begin_step(0);
        a.grow();
        let h = a.try_admit(&spec(1, false, 6, 7, 12)).unwrap().handle;
        a.end_step();
        assert_eq!(a.occupancy().physical_blocks, 2);
        assert_eq!(a.occupancy().internal_slots, 1);
        // Step 1 writes token 8 into the last slot: no new block.
        a.begin_step(1);
        assert_eq!(a.decode_demand(), 0);
        a.grow();
        a.end_step();
        assert_eq!(a.occupancy().physical_blocks, 2);
        assert_eq!(a.occupancy().internal_slots, 0);
        // Step 2 writes token 9: a third block, 3 empty slots.
        a.begin_step(2);
        assert_eq!(a.decode_demand(), 1);
        a.grow();
        a.end_step();
        let o = a.occupancy();
        assert_eq!(
            (o.physical_blocks, o.token_slots, o.internal_slots),
            (3, 9, 3)
        );
        a.audit().unwrap();
        a.release(h);
        assert_eq!(a.free_units(), 10);
        a.audit().unwrap();
    }

    #[test]
    fn parallel_samples_share_full_prompt_blocks_and_copy_the_partial_one() {
        // Prompt 9 tokens = 2 full blocks + 1 token; 3 samples each hold 10 tokens.
        // Without sharing: 3 × ceil(10/4) = 9 blocks. With sharing: the 2 full prompt blocks
        // once + a private last block (prompt token 9 + its first token) per sample = 5.
        let mut plain = pool(20, false);
        plain.begin_step(0);
        plain.grow();
        plain.try_admit(&spec(3, false, 9, 10, 20)).unwrap();
        plain.end_step();
        assert_eq!(plain.occupancy().physical_blocks, 9);
        let mut shared = pool(20, true);
        shared.begin_step(0);
        shared.grow();
        shared.try_admit(&spec(3, false, 9, 10, 20)).unwrap();
        shared.end_step();
        let o = shared.occupancy();
        assert_eq!((o.physical_blocks, o.logical_blocks), (5, 9));
        // Physical tokens: 8 shared + 3 × 2 private = 14; internal = 3 × 2 empty = 6.
        assert_eq!((o.token_slots, o.internal_slots), (14, 6));
        shared.audit().unwrap();
    }

    #[test]
    fn beams_fork_and_copy_on_write() {
        // 2 beams, prompt 4 (one full block, shared), each beam then 1 private token.
        let mut a = pool(20, true);
        a.begin_step(0);
        a.grow();
        let h = a.try_admit(&spec(2, true, 4, 5, 40)).unwrap().handle;
        a.end_step();
        assert_eq!(a.occupancy().physical_blocks, 3);
        for _ in 0..12 {
            step(&mut a);
        }
        // 17 tokens per beam: logical 2 × 5 blocks; physical between 5 (+1 partial each = 6
        // when the beams descend from one parent) and 10.
        let o = a.occupancy();
        assert_eq!(o.logical_blocks, 10);
        assert!(o.physical_blocks >= 6 && o.physical_blocks <= 10, "{o:?}");
        a.release(h);
        assert_eq!(a.free_units(), 20);
        a.audit().unwrap();
    }

    #[test]
    fn swap_out_and_in_preserves_sharing() {
        let mut a = pool(20, true);
        a.begin_step(0);
        a.grow();
        let h = a.try_admit(&spec(3, false, 9, 10, 20)).unwrap().handle;
        a.end_step();
        a.begin_step(1);
        // 5 distinct blocks move to the CPU: 5 blocks × 4 B.
        assert_eq!(a.swap_out(h), Some(5 * 4));
        assert_eq!(a.free_units(), 20);
        assert_eq!(a.cpu_blocks_used(), 5);
        a.grow();
        a.audit().unwrap();
        a.end_step();
        a.begin_step(2);
        a.grow();
        // Back in step 2: 5 blocks copied in, token 11 goes into the private tails.
        assert_eq!(a.try_swap_in(h), Some(5 * 4));
        a.end_step();
        let o = a.occupancy();
        assert_eq!(
            (o.physical_blocks, o.logical_blocks, o.token_slots),
            (5, 9, 8 + 3 * 3)
        );
        assert_eq!(a.cpu_blocks_used(), 0);
        a.audit().unwrap();
    }

    #[test]
    fn shared_prefix_is_cached_while_used() {
        // Prefix of 8 tokens = 2 full blocks; two requests with prompt 10.
        let mut a = pool(20, true);
        let p = Some(SharedPrefix { id: 0, tokens: 8 });
        let mut s = spec(1, false, 10, 11, 20);
        s.prefix = p;
        a.begin_step(0);
        a.grow();
        let h1 = a.try_admit(&s).unwrap();
        let h2 = a.try_admit(&s).unwrap();
        a.end_step();
        assert_eq!(h1.cached_prompt_tokens, 0);
        assert_eq!(h2.cached_prompt_tokens, 8);
        // 2 prefix blocks + 1 private block each (tokens 9..11).
        assert_eq!(a.occupancy().physical_blocks, 4);
        a.audit().unwrap();
        a.release(h1.handle);
        a.release(h2.handle);
        assert_eq!(a.free_units(), 20);
        a.audit().unwrap();
    }
}
