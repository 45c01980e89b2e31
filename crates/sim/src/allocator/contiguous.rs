//! Orca-style contiguous reservation: at admission every sequence reserves one contiguous
//! range of token slots, sized by a [`ReservationPolicy`], and keeps it until it finishes.
//! A reservation never grows, so this allocator never needs to preempt.
//!
//! The address space is a real allocator, so external fragmentation comes from real holes,
//! never from a constant. Two placements ([`Placement`]):
//! - first fit (default): the lowest-addressed hole that fits, exact size, coalescing on
//!   free — the textbook contiguous allocator; it shows what exact reservations buy;
//! - buddy: what Orca used (PagedAttention paper §6.1): power-of-two blocks aligned to their
//!   size, so even an exact (Oracle) reservation occupies a power-of-two block; the rest of
//!   the block is reported as external fragmentation ("& others"). With it our Oracle bar
//!   matches the paper's Fig. 2 (tests/figure2.rs).

use super::{AdmitSpec, Admitted, Handle, KvAllocator, Occupancy, QuietModel};

/// How much a sequence reserves at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationPolicy {
    /// The model's maximum sequence length (Orca (Max)).
    Max,
    /// The next power of two of the final length, at most the maximum (Orca (Pow2):
    /// "over-reserves at most 2×", true length 25 → 32).
    Pow2,
    /// Exactly the final length (Orca (Oracle): output length known in advance).
    Oracle,
}

/// How reservations are placed in the address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Lowest-addressed hole that fits, exact size, coalescing on free.
    #[default]
    FirstFit,
    /// Binary buddy system (Knuth, TAOCP vol. 1 §2.5): blocks of 2^k slots aligned to their
    /// size, split on allocation and merged with their buddy on free. The pool is cut into
    /// the largest aligned power-of-two blocks that fit. A reservation takes the smallest
    /// block that holds it; the rest of the block is counted as external fragmentation
    /// (lost to the allocator, not reserved by the request).
    Buddy,
}

/// Free blocks of a buddy system, by order, lowest address first.
#[derive(Debug, Default)]
struct Buddy {
    free: Vec<std::collections::BTreeSet<u32>>,
    /// Top-level blocks (start, order): merges never cross them.
    roots: Vec<(u32, u32)>,
}

impl Buddy {
    fn new(capacity: u32) -> Buddy {
        let mut b = Buddy {
            free: vec![Default::default(); 33],
            roots: Vec::new(),
        };
        let mut start = 0u32;
        while start < capacity {
            let order = 31 - (capacity - start).leading_zeros();
            b.roots.push((start, order));
            b.free[order as usize].insert(start);
            start += 1 << order;
        }
        b
    }

    /// Order of the smallest block holding `len` slots; 32 (no such block) past 2^31.
    fn order_for(len: u32) -> u32 {
        len.max(1)
            .checked_next_power_of_two()
            .map_or(32, |p| p.trailing_zeros())
    }

    fn alloc(&mut self, len: u32) -> Option<Range> {
        let k = Self::order_for(len) as usize;
        let j = (k..self.free.len()).find(|&j| !self.free[j].is_empty())?;
        let start = self.free[j].pop_first()?;
        // Split down to order k, freeing the upper halves.
        for o in (k..j).rev() {
            self.free[o].insert(start + (1 << o));
        }
        Some(Range { start, len: 1 << k })
    }

    fn release(&mut self, r: Range) {
        let mut start = r.start;
        let mut order = r.len.trailing_zeros();
        let root_order = self
            .roots
            .iter()
            .find(|&&(s, o)| start >= s && u64::from(start) < u64::from(s) + (1u64 << o))
            .map_or(0, |&(_, o)| o);
        while order < root_order {
            let buddy = start ^ (1 << order);
            if !self.free[order as usize].remove(&buddy) {
                break;
            }
            start = start.min(buddy);
            order += 1;
        }
        self.free[order as usize].insert(start);
    }

    fn holes(&self) -> impl Iterator<Item = Range> + '_ {
        self.free
            .iter()
            .enumerate()
            .flat_map(|(o, set)| set.iter().map(move |&start| Range { start, len: 1 << o }))
    }
}

/// One hole or one reservation: `[start, start + len)` in token slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u32,
    len: u32,
}

#[derive(Debug, Default)]
struct GroupSlot {
    regions: Vec<Range>,
    /// Slots each sequence reserved (its region may be larger: a buddy block).
    reserve: u32,
    final_len: u32,
    /// Tokens per sequence = kv_base + steps_done.
    kv_base: i64,
    live: bool,
}

/// Contiguous reservations over a first-fit address space.
#[derive(Debug)]
pub struct ContiguousAllocator {
    policy: ReservationPolicy,
    max_seq_len: u32,
    capacity: u32,
    placement: Placement,
    /// First fit: free holes sorted by start, never adjacent (coalesced).
    holes: Vec<Range>,
    /// Buddy: free blocks by order.
    buddy: Buddy,
    free_slots: u64,
    /// Slots of buddy blocks beyond the reservations they hold.
    slack_total: u64,
    groups: Vec<GroupSlot>,
    free_handles: Vec<Handle>,
    running_seqs: u64,
    logical_tokens: u64,
    reserved_total: u64,
    final_total: u64,
    steps_done: u64,
}

impl ContiguousAllocator {
    /// An empty address space of `capacity_slots` token slots.
    pub fn new(
        policy: ReservationPolicy,
        placement: Placement,
        capacity_slots: u32,
        max_seq_len: u32,
    ) -> Self {
        let holes = if capacity_slots > 0 {
            vec![Range {
                start: 0,
                len: capacity_slots,
            }]
        } else {
            Vec::new()
        };
        ContiguousAllocator {
            policy,
            max_seq_len,
            capacity: capacity_slots,
            placement,
            holes: if placement == Placement::FirstFit {
                holes
            } else {
                Vec::new()
            },
            buddy: if placement == Placement::Buddy {
                Buddy::new(capacity_slots)
            } else {
                Buddy::default()
            },
            free_slots: u64::from(capacity_slots),
            slack_total: 0,
            groups: Vec::new(),
            free_handles: Vec::new(),
            running_seqs: 0,
            logical_tokens: 0,
            reserved_total: 0,
            final_total: 0,
            steps_done: 0,
        }
    }

    /// Slots reserved for a sequence whose final length is `final_len`.
    pub fn reservation(&self, final_len: u32) -> u32 {
        match self.policy {
            ReservationPolicy::Max => self.max_seq_len,
            ReservationPolicy::Pow2 => final_len
                .checked_next_power_of_two()
                .unwrap_or(u32::MAX)
                .min(self.max_seq_len.max(final_len)),
            ReservationPolicy::Oracle => final_len,
        }
    }

    /// Length of the largest free hole (what the next reservation can get at most).
    pub fn largest_hole(&self) -> u32 {
        match self.placement {
            Placement::FirstFit => self.holes.iter().map(|h| h.len).max().unwrap_or(0),
            Placement::Buddy => self.buddy.holes().map(|h| h.len).max().unwrap_or(0),
        }
    }

    /// A free range of at least `len` slots (exactly `len` for first fit, the buddy block
    /// for the buddy system).
    fn alloc_range(&mut self, len: u32) -> Option<Range> {
        let got = match self.placement {
            Placement::FirstFit => self.first_fit(len),
            Placement::Buddy => self.buddy.alloc(len),
        }?;
        self.free_slots -= u64::from(got.len);
        Some(got)
    }

    fn free_range(&mut self, r: Range) {
        self.free_slots += u64::from(r.len);
        match self.placement {
            Placement::FirstFit => self.free_hole(r),
            Placement::Buddy => self.buddy.release(r),
        }
    }

    /// First fit: the lowest-addressed hole that is large enough.
    fn first_fit(&mut self, len: u32) -> Option<Range> {
        let i = self.holes.iter().position(|h| h.len >= len)?;
        let hole = &mut self.holes[i];
        let got = Range {
            start: hole.start,
            len,
        };
        hole.start += len;
        hole.len -= len;
        if hole.len == 0 {
            self.holes.remove(i);
        }
        Some(got)
    }

    /// Returns a range to the free list, merging it with adjacent holes.
    fn free_hole(&mut self, r: Range) {
        if r.len == 0 {
            return;
        }
        let i = self.holes.partition_point(|h| h.start < r.start);
        let merges_prev = i > 0 && {
            let p = self.holes[i - 1];
            p.start + p.len == r.start
        };
        let merges_next = i < self.holes.len() && r.start + r.len == self.holes[i].start;
        match (merges_prev, merges_next) {
            (true, true) => {
                let next = self.holes.remove(i);
                self.holes[i - 1].len += r.len + next.len;
            }
            (true, false) => self.holes[i - 1].len += r.len,
            (false, true) => {
                self.holes[i].start = r.start;
                self.holes[i].len += r.len;
            }
            (false, false) => self.holes.insert(i, r),
        }
    }
}

impl KvAllocator for ContiguousAllocator {
    fn capacity_slots(&self) -> u64 {
        u64::from(self.capacity)
    }

    fn can_ever_fit(&self, spec: &AdmitSpec) -> bool {
        let reserve = self.reservation(spec.final_len);
        match self.placement {
            Placement::FirstFit => {
                u64::from(spec.num_seqs) * u64::from(reserve) <= u64::from(self.capacity)
            }
            Placement::Buddy => {
                // Blocks of the reservation's order that the empty arena can hold.
                let k = Buddy::order_for(reserve);
                let fit: u64 = self
                    .buddy
                    .roots
                    .iter()
                    .filter(|&&(_, o)| o >= k)
                    .map(|&(_, o)| 1u64 << (o - k))
                    .sum();
                u64::from(spec.num_seqs) <= fit
            }
        }
    }

    #[inline]
    fn begin_step(&mut self, _step: u64) {}

    #[inline]
    fn decode_demand(&self) -> u64 {
        0
    }

    fn free_units(&self) -> u64 {
        self.free_slots
    }

    fn free_memory_only_shrinks(&self) -> bool {
        true
    }

    #[inline]
    fn grow(&mut self) {
        // Every running sequence writes one token into its reservation.
        self.logical_tokens += self.running_seqs;
    }

    fn try_admit(&mut self, spec: &AdmitSpec) -> Option<Admitted> {
        let reserve = self.reservation(spec.final_len);
        let handle = self.free_handles.pop().unwrap_or_else(|| {
            self.groups.push(GroupSlot::default());
            (self.groups.len() - 1) as Handle
        });
        let mut regions = std::mem::take(&mut self.groups[handle as usize].regions);
        regions.clear();
        for _ in 0..spec.num_seqs {
            match self.alloc_range(reserve) {
                Some(r) => regions.push(r),
                None => {
                    // All sequences of a request are admitted together or not at all.
                    for r in regions.drain(..) {
                        self.free_range(r);
                    }
                    self.groups[handle as usize].regions = regions;
                    self.free_handles.push(handle);
                    return None;
                }
            }
        }
        let n = u64::from(spec.num_seqs);
        self.running_seqs += n;
        self.logical_tokens += n * u64::from(spec.kv_after);
        self.reserved_total += n * u64::from(reserve);
        self.final_total += n * u64::from(spec.final_len);
        self.slack_total += regions
            .iter()
            .map(|r| u64::from(r.len - reserve))
            .sum::<u64>();
        let slot = &mut self.groups[handle as usize];
        slot.regions = regions;
        slot.reserve = reserve;
        slot.final_len = spec.final_len;
        // kv after this step = kv_base + (steps_done + 1).
        slot.kv_base = i64::from(spec.kv_after) - self.steps_done as i64 - 1;
        slot.live = true;
        Some(Admitted {
            handle,
            cached_prompt_tokens: 0,
        })
    }

    fn release(&mut self, handle: Handle) {
        let slot = &mut self.groups[handle as usize];
        debug_assert!(slot.live, "release of a dead handle");
        slot.live = false;
        let mut regions = std::mem::take(&mut slot.regions);
        let final_len = u64::from(slot.final_len);
        let reserve = slot.reserve;
        let kv = (slot.kv_base + self.steps_done as i64) as u64;
        let n = regions.len() as u64;
        self.running_seqs -= n;
        self.logical_tokens -= n * kv;
        self.final_total -= n * final_len;
        for r in regions.drain(..) {
            self.reserved_total -= u64::from(reserve);
            self.slack_total -= u64::from(r.len - reserve);
            self.free_range(r);
        }
        self.groups[handle as usize].regions = regions;
        self.free_handles.push(handle);
    }

    /// Reservations never grow, so the scheduler never preempts a contiguous request.
    fn swap_out(&mut self, _handle: Handle) -> Option<u64> {
        None
    }

    fn try_swap_in(&mut self, _handle: Handle) -> Option<u64> {
        None
    }

    #[inline]
    fn end_step(&mut self) {
        self.steps_done += 1;
    }

    fn demand_cycle(&self) -> (&[u64], usize) {
        (&[], 0)
    }

    fn quiet_model(&self) -> QuietModel {
        QuietModel {
            start: self.occupancy().as_array(),
            // A token moves a slot from reservation to token states.
            per_token: [1, -1, 0, 0, 0, 0],
            per_block: [0; 6],
        }
    }

    fn advance_quiet(&mut self, steps: u64, _blocks: u64) {
        self.logical_tokens += steps * self.running_seqs;
        self.steps_done += steps;
    }

    #[inline]
    fn occupancy(&self) -> Occupancy {
        Occupancy {
            token_slots: self.logical_tokens,
            reserved_slots: self.final_total - self.logical_tokens,
            internal_slots: self.reserved_total - self.final_total,
            slack_slots: self.slack_total,
            logical_blocks: 0,
            physical_blocks: 0,
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
        // Holes and live regions must tile [0, capacity) exactly, without overlap.
        let mut ranges: Vec<(Range, bool)> = match self.placement {
            Placement::FirstFit => self.holes.iter().map(|h| (*h, true)).collect(),
            Placement::Buddy => self.buddy.holes().map(|h| (h, true)).collect(),
        };
        for g in self.groups.iter().filter(|g| g.live) {
            ranges.extend(g.regions.iter().map(|r| (*r, false)));
        }
        ranges.sort_by_key(|(r, _)| r.start);
        let mut cursor = 0u64;
        for (i, (r, is_hole)) in ranges.iter().enumerate() {
            if u64::from(r.start) != cursor {
                return Err(format!(
                    "address space gap or overlap at slot {cursor} (next range starts at {})",
                    r.start
                ));
            }
            if r.len == 0 {
                return Err("empty range".into());
            }
            // Free buddies of different sizes may touch; first-fit holes never do.
            let first_fit = self.placement == Placement::FirstFit;
            if first_fit && *is_hole && i > 0 && ranges[i - 1].1 {
                return Err(format!("adjacent holes not coalesced at slot {}", r.start));
            }
            cursor += u64::from(r.len);
        }
        if cursor != u64::from(self.capacity) {
            return Err(format!(
                "ranges cover {cursor} slots, pool has {}",
                self.capacity
            ));
        }
        let live = || self.groups.iter().filter(|g| g.live);
        let reserved: u64 = live()
            .map(|g| g.regions.len() as u64 * u64::from(g.reserve))
            .sum();
        let held: u64 = live()
            .flat_map(|g| g.regions.iter())
            .map(|r| u64::from(r.len))
            .sum();
        if reserved != self.reserved_total || held - reserved != self.slack_total {
            return Err(format!(
                "counters reserved {} slack {} != regions {reserved} + {}",
                self.reserved_total,
                self.slack_total,
                held - reserved
            ));
        }
        if self.free_slots + held != u64::from(self.capacity) {
            return Err(format!(
                "free counter {} + held {held} != pool {}",
                self.free_slots, self.capacity
            ));
        }
        if self.logical_tokens > self.final_total || self.final_total > self.reserved_total {
            return Err("tokens > final lengths > reservations violated".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: u32, prompt: u32, final_len: u32) -> AdmitSpec {
        AdmitSpec {
            num_seqs: n,
            beam: false,
            prompt,
            kv_after: prompt + 1,
            final_len,
            prefix: None,
        }
    }

    #[test]
    fn reservation_policies() {
        let max =
            ContiguousAllocator::new(ReservationPolicy::Max, Placement::FirstFit, 10_000, 2048);
        let pow2 =
            ContiguousAllocator::new(ReservationPolicy::Pow2, Placement::FirstFit, 10_000, 2048);
        let oracle =
            ContiguousAllocator::new(ReservationPolicy::Oracle, Placement::FirstFit, 10_000, 2048);
        assert_eq!(max.reservation(25), 2048);
        // The paper's example: true length 25 → 32.
        assert_eq!(pow2.reservation(25), 32);
        assert_eq!(pow2.reservation(32), 32);
        assert_eq!(pow2.reservation(1500), 2048);
        assert_eq!(oracle.reservation(25), 25);
    }

    #[test]
    fn first_fit_reuses_the_lowest_hole_and_coalesces() {
        // 100 slots, Oracle. A=[0,30) B=[30,50) C=[50,90), hole [90,100).
        let mut a =
            ContiguousAllocator::new(ReservationPolicy::Oracle, Placement::FirstFit, 100, 100);
        let ha = a.try_admit(&spec(1, 10, 30)).unwrap().handle;
        let hb = a.try_admit(&spec(1, 10, 20)).unwrap().handle;
        let hc = a.try_admit(&spec(1, 10, 40)).unwrap().handle;
        assert_eq!(a.free_units(), 10);
        // Free A → holes [0,30) and [90,100): 40 slots free but no hole of 35: external
        // fragmentation.
        a.release(ha);
        assert_eq!(a.free_units(), 40);
        assert_eq!(a.largest_hole(), 30);
        assert!(a.try_admit(&spec(1, 10, 35)).is_none());
        a.audit().unwrap();
        // Freeing B merges [0,30)+[30,50) → [0,50): now 35 fits at slot 0.
        a.release(hb);
        assert_eq!(a.largest_hole(), 50);
        let hd = a.try_admit(&spec(1, 10, 35)).unwrap().handle;
        assert_eq!(a.groups[hd as usize].regions[0].start, 0);
        a.audit().unwrap();
        a.release(hc);
        a.release(hd);
        assert_eq!(a.holes, vec![Range { start: 0, len: 100 }]);
    }

    #[test]
    fn buddy_splits_and_merges() {
        // 12 slots → top-level blocks [0,8) (order 3) and [8,12) (order 2).
        let mut b = Buddy::new(12);
        assert_eq!(b.roots, vec![(0, 3), (8, 2)]);
        // 3 slots → a 4-block: the only free order-2 block is at 8.
        assert_eq!(b.alloc(3), Some(Range { start: 8, len: 4 }));
        // 5 slots → an 8-block at 0; nothing is left.
        assert_eq!(b.alloc(5), Some(Range { start: 0, len: 8 }));
        assert_eq!(b.alloc(1), None);
        b.release(Range { start: 8, len: 4 });
        // 1 slot splits [8,12) into [8,9), [9,10) free, [10,12) free.
        assert_eq!(b.alloc(1), Some(Range { start: 8, len: 1 }));
        assert!(b.free[0].contains(&9) && b.free[1].contains(&10));
        // Freeing [8,9) merges with 9, then with [10,12), back to [8,12) and no further
        // (the order-2 root cannot merge with the order-3 one).
        b.release(Range { start: 8, len: 1 });
        assert_eq!(
            b.holes().collect::<Vec<_>>(),
            vec![Range { start: 8, len: 4 }]
        );
    }

    #[test]
    fn buddy_slack_is_counted_apart_from_reservations() {
        // Oracle reserves 5 and 3 slots in a 16-slot buddy arena: blocks of 8 and 4, slack
        // 3 + 1 = 4; internal 0 (the requests reserve exactly their final length).
        let mut a = ContiguousAllocator::new(ReservationPolicy::Oracle, Placement::Buddy, 16, 16);
        a.try_admit(&spec(1, 2, 5)).unwrap();
        a.try_admit(&spec(1, 1, 3)).unwrap();
        let o = a.occupancy();
        assert_eq!((o.internal_slots, o.slack_slots), (0, 4));
        assert_eq!(a.free_units(), 4);
        a.audit().unwrap();
        // 5 more slots need an 8-block: 4 free slots, none of them in one: refused.
        assert!(a.try_admit(&spec(1, 2, 5)).is_none());
        assert!(!a.can_ever_fit(&spec(3, 2, 5)));
        assert!(a.can_ever_fit(&spec(2, 2, 5)));
    }

    #[test]
    fn multi_sequence_admission_is_all_or_nothing() {
        // 3 samples × 40 slots = 120 > 100: nothing may stay allocated after the failure.
        let mut a =
            ContiguousAllocator::new(ReservationPolicy::Oracle, Placement::FirstFit, 100, 100);
        assert!(a.try_admit(&spec(3, 10, 40)).is_none());
        assert_eq!(a.free_units(), 100);
        assert!(!a.can_ever_fit(&spec(3, 10, 40)));
        assert!(a.can_ever_fit(&spec(2, 10, 40)));
        a.audit().unwrap();
    }
}
