//! A reference model of pcpu-pageset's `Pool` and a harness that runs operations against both
//! and checks they agree. Run by pcpu-pageset's proptest (`crates/pageset/tests/model.rs`) and
//! the `pageset` fuzz target (`fuzz/fuzz_targets/pageset.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use pcpu_pageset::{PagesetError, PagesetId, Pool, PoolConfig, SizeClass, Slot};

/// One operation of a test sequence. `pick` chooses among the live slots (or pagesets) by
/// index modulo their number; an operation with nothing to pick does nothing.
#[derive(Clone, Debug)]
pub enum Op {
    /// Assign one slot.
    Assign,
    /// Assign `n` slots in one batch.
    AssignBatch {
        /// How many.
        n: usize,
        /// Through `assign_lines` (a magazine's batch: whole free cache lines first).
        lines: bool,
    },
    /// Unassign one live slot.
    Unassign {
        /// Which.
        pick: usize,
    },
    /// Unassign `n` live slots at once; with `dup`, list one twice (must fail, change
    /// nothing).
    UnassignBatch {
        /// The first of them (the rest follow it in the live list).
        pick: usize,
        /// How many.
        n: usize,
        /// List one of them twice.
        dup: bool,
    },
    /// Unassign a slot that was already unassigned (must fail, change nothing).
    UnassignStale {
        /// Which.
        pick: usize,
    },
    /// Unassign an address that is not a slot of the pool (must fail, change nothing).
    UnassignForeign {
        /// The slot next to which the address lies.
        pick: usize,
        /// Its distance from that slot.
        offset: usize,
    },
    /// Write `value` into a word of a live slot's cell.
    Write {
        /// Which slot.
        pick: usize,
        /// Whose cell.
        cpu: usize,
        /// Which word of it.
        word: usize,
        /// What.
        value: u64,
    },
    /// Mark a pageset draining or not.
    SetDraining {
        /// Which.
        pick: usize,
        /// Draining or not.
        on: bool,
    },
    /// Release the pool's empty pagesets (their ids become invalid).
    Release,
    /// Compare the pool with the model.
    Check,
}

impl Op {
    /// Decodes an operation from raw numbers (the fuzzer's and proptest's common input).
    pub fn decode(kind: u8, a: u64, b: u64, c: u64) -> Op {
        let (a, b) = (a as usize, b as usize);
        match kind % 16 {
            0..=3 => Op::Assign,
            4 => Op::AssignBatch {
                n: b % 64,
                lines: c % 2 == 1,
            },
            5 | 6 => Op::Unassign { pick: a },
            7 => Op::UnassignBatch {
                pick: a,
                n: b % 16,
                dup: c % 8 == 0,
            },
            8 => Op::UnassignStale { pick: a },
            9 => Op::UnassignForeign { pick: a, offset: b },
            10..=12 => Op::Write {
                pick: a,
                cpu: b,
                word: b >> 16,
                value: c,
            },
            13 => Op::SetDraining {
                pick: a,
                on: b % 2 == 0,
            },
            14 => Op::Release,
            _ => Op::Check,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct PagesetModel {
    assigned: usize,
    draining: bool,
}

/// The pool under test and the model it must agree with.
pub struct Harness {
    /// The pool under test.
    pub pool: Pool,
    cap: usize,
    /// Live slots, in a stable order for picking.
    live: Vec<Slot>,
    /// Expected non-zero cell contents: (slot, cpu, word) -> value.
    cells: HashMap<(Slot, usize, usize), u64>,
    /// Recently unassigned slots.
    freed: Vec<Slot>,
    pagesets: BTreeMap<PagesetId, PagesetModel>,
    slot_pageset: HashMap<Slot, PagesetId>,
}

impl Harness {
    /// `pages` pages per unit; `probe` toggles the pagemap probe of unassign.
    pub fn new(class: SizeClass, ncpu: usize, pages: usize, probe: bool) -> Harness {
        let config = PoolConfig::new(class)
            .with_ncpu(ncpu)
            .with_unit_bytes(pages * pcpu_pageset::page_size());
        let mut pool = Pool::new(config).expect("valid config");
        pool.set_pagemap_probe(probe);
        let cap = pool.slots_per_pageset();
        Harness {
            pool,
            cap,
            live: Vec::new(),
            cells: HashMap::new(),
            freed: Vec::new(),
            pagesets: BTreeMap::new(),
            slot_pageset: HashMap::new(),
        }
    }

    /// Decodes a configuration from raw numbers.
    pub fn decode(class: u8, ncpu: u8, pages: u8, probe: bool) -> Harness {
        let class = SizeClass::ALL[class as usize % SizeClass::ALL.len()];
        Harness::new(class, 1 + ncpu as usize % 8, 1 + pages as usize % 2, probe)
    }

    fn cell(&self, slot: Slot, cpu: usize, word: usize) -> &AtomicU64 {
        assert!(cpu < self.pool.ncpu() && word < self.pool.class().bytes() / 8);
        let addr = slot.addr() + cpu * self.pool.stride() + word * 8;
        // SAFETY: `slot` is assigned by `self.pool` (callers only pass live slots), which is
        // alive for the borrow of `self`; the cell is in bounds (checked above) and
        // 8-aligned; all accesses to cells in these tests are atomic.
        unsafe { AtomicU64::from_ptr(addr as *mut u64) }
    }

    fn read_all_zero(&self, slot: Slot) {
        for cpu in 0..self.pool.ncpu() {
            for w in 0..self.pool.class().bytes() / 8 {
                let v = self.cell(slot, cpu, w).load(Ordering::Relaxed);
                assert_eq!(v, 0, "fresh slot {slot:?} cpu {cpu} word {w} reads {v:#x}");
            }
        }
    }

    /// The pageset the pool must pick from next, if any (densest non-draining with room).
    fn densest_occupancy(&self) -> Option<usize> {
        self.pagesets
            .values()
            .filter(|p| !p.draining && p.assigned < self.cap)
            .map(|p| p.assigned)
            .max()
    }

    fn assignable(&self) -> usize {
        self.pagesets
            .values()
            .filter(|p| !p.draining)
            .map(|p| self.cap - p.assigned)
            .sum()
    }

    /// Whether the pool lists `slot` among the live slots of its pageset (listed in address
    /// order, so the search stops at `slot`).
    fn pool_lists(&self, slot: Slot) -> bool {
        self.pool
            .pageset_of(slot)
            .is_some_and(|id| self.pool.live_slots(id).find(|&s| s >= slot) == Some(slot))
    }

    fn record_assigned(&mut self, slot: Slot) -> bool {
        assert!(
            !self.slot_pageset.contains_key(&slot),
            "slot {slot:?} handed out twice"
        );
        assert!(
            self.pool_lists(slot),
            "assigned slot {slot:?} not listed live"
        );
        let id = self
            .pool
            .pageset_of(slot)
            .expect("assigned slot has a pageset");
        let new = !self.pagesets.contains_key(&id);
        let ps = self.pagesets.entry(id).or_default();
        assert!(!ps.draining, "assigned from a draining pageset");
        ps.assigned += 1;
        assert!(ps.assigned <= self.cap);
        self.slot_pageset.insert(slot, id);
        self.live.push(slot);
        self.freed.retain(|&s| s != slot);
        new
    }

    /// Updates the model for a slot the pool has just unassigned.
    fn forget(&mut self, slot: Slot) {
        for cpu in 0..self.pool.ncpu() {
            for w in 0..self.pool.class().bytes() / 8 {
                self.cells.remove(&(slot, cpu, w));
            }
        }
        let id = self.slot_pageset.remove(&slot).unwrap();
        self.pagesets.get_mut(&id).unwrap().assigned -= 1;
        assert!(
            !self.pool_lists(slot),
            "unassigned slot {slot:?} still listed live"
        );
        self.freed.push(slot);
        if self.freed.len() > 64 {
            self.freed.remove(0);
        }
    }

    /// Runs `op` on the pool and the model, and checks what it returned.
    pub fn apply(&mut self, op: &Op) {
        match *op {
            Op::Assign => {
                let expect = self.densest_occupancy();
                let slot = self.pool.assign().expect("assign");
                self.read_all_zero(slot);
                let id = self.pool.pageset_of(slot).unwrap();
                let had = self.pagesets.get(&id).map(|p| p.assigned);
                match expect {
                    Some(occ) => assert_eq!(had, Some(occ), "not densest first"),
                    // A pageset unknown to the model: a new mapping (counted by `check`).
                    None => assert_eq!(had, None, "mapped a pageset while one had room"),
                }
                self.record_assigned(slot);
            }
            Op::AssignBatch { n, lines } => {
                let need = n.saturating_sub(self.assignable()).div_ceil(self.cap);
                let mut out = vec![];
                if lines {
                    self.pool.assign_lines(n, &mut out).expect("assign_lines");
                } else {
                    self.pool.assign_batch(n, &mut out).expect("assign_batch");
                }
                assert_eq!(out.len(), n);
                let distinct: HashSet<Slot> = out.iter().copied().collect();
                assert_eq!(distinct.len(), n, "batch handed out a slot twice");
                let mut new = 0;
                for slot in out {
                    self.read_all_zero(slot);
                    new += usize::from(self.record_assigned(slot));
                }
                assert_eq!(new, need, "batch mapped more pagesets than it needed");
            }
            Op::Unassign { pick } => {
                if self.live.is_empty() {
                    return;
                }
                let slot = self.live.swap_remove(pick % self.live.len());
                self.pool.unassign(slot).expect("unassign of a live slot");
                self.forget(slot);
            }
            Op::UnassignBatch { pick, n, dup } => {
                let n = n.min(self.live.len());
                if n == 0 {
                    return;
                }
                let start = pick % self.live.len();
                let mut batch: Vec<Slot> = (0..n)
                    .map(|i| self.live[(start + i) % self.live.len()])
                    .collect();
                if dup {
                    batch.push(batch[0]);
                    let before = self.pool.stats();
                    let err = self
                        .pool
                        .unassign_batch(&batch)
                        .expect_err("duplicate in batch");
                    assert!(matches!(err, PagesetError::NotAssigned(s) if s == batch[0]));
                    let after = self.pool.stats();
                    assert_eq!((after.assigned, after.free), (before.assigned, before.free));
                    for &slot in &batch {
                        assert!(self.pool_lists(slot), "failed batch unassigned {slot:?}");
                    }
                    return;
                }
                self.pool
                    .unassign_batch(&batch)
                    .expect("unassign_batch of live slots");
                for slot in batch {
                    let at = self.live.iter().position(|&s| s == slot).unwrap();
                    self.live.swap_remove(at);
                    self.forget(slot);
                }
            }
            Op::UnassignStale { pick } => {
                if self.freed.is_empty() {
                    return;
                }
                let slot = self.freed[pick % self.freed.len()];
                let before = self.pool.stats();
                let err = self
                    .pool
                    .unassign(slot)
                    .expect_err("double unassign must fail");
                assert!(matches!(
                    err,
                    PagesetError::NotAssigned(_) | PagesetError::ForeignSlot(_)
                ));
                assert_eq!(self.pool.stats().assigned, before.assigned);
                assert_eq!(self.pool.stats().free, before.free);
            }
            Op::UnassignForeign { pick, offset } => {
                let base = match self.live.is_empty() {
                    true => &self.cap as *const usize as usize, // a stack address
                    false => self.live[pick % self.live.len()].addr(),
                };
                // Off every slot boundary: a non-multiple of 8 (sizes are multiples of 8).
                let addr = base + 1 + offset % 7;
                // SAFETY: the address is only handed to the pool, which must reject it.
                let slot = unsafe { Slot::from_addr(addr) }.unwrap();
                let before = self.pool.stats().assigned;
                assert!(matches!(
                    self.pool.unassign(slot),
                    Err(PagesetError::ForeignSlot(_))
                ));
                assert!(!self.pool_lists(slot));
                assert_eq!(self.pool.stats().assigned, before);
            }
            Op::Write {
                pick,
                cpu,
                word,
                value,
            } => {
                if self.live.is_empty() {
                    return;
                }
                let slot = self.live[pick % self.live.len()];
                let cpu = cpu % self.pool.ncpu();
                let word = word % (self.pool.class().bytes() / 8);
                let value = value | 1;
                self.cell(slot, cpu, word).store(value, Ordering::Relaxed);
                self.cells.insert((slot, cpu, word), value);
            }
            Op::SetDraining { pick, on } => {
                if self.pagesets.is_empty() {
                    return;
                }
                let id = *self
                    .pagesets
                    .keys()
                    .nth(pick % self.pagesets.len())
                    .unwrap();
                self.pool
                    .set_draining(id, on)
                    .expect("set_draining of a mapped pageset");
                self.pagesets.get_mut(&id).unwrap().draining = on;
            }
            Op::Release => {
                let empty: Vec<PagesetId> = self
                    .pagesets
                    .iter()
                    .filter(|(_, p)| p.assigned == 0)
                    .map(|(&id, _)| id)
                    .collect();
                let r = self.pool.release();
                assert_eq!(r.pagesets_unmapped, empty.len());
                for id in empty {
                    self.pagesets.remove(&id);
                    assert!(
                        self.pool.set_draining(id, true).is_err(),
                        "unmapped id still valid"
                    );
                }
            }
            Op::Check => self.check(),
        }
    }

    /// Full comparison of the pool against the model.
    pub fn check(&self) {
        let stats = self.pool.stats();
        let assigned = self.live.len();
        assert_eq!(stats.assigned, assigned);
        assert_eq!(stats.pagesets_mapped, self.pagesets.len());
        assert_eq!(stats.free, self.pagesets.len() * self.cap - assigned);
        assert_eq!(
            stats.pagesets_draining,
            self.pagesets.values().filter(|p| p.draining).count()
        );
        assert_eq!(
            stats.bytes_mapped,
            self.pagesets.len() * self.pool.pageset_bytes()
        );
        assert!(stats.bytes_resident <= stats.bytes_mapped);
        // The O(1) count of occupied pages against the pages of the live slots.
        let page = pcpu_pageset::page_size();
        let occupied: std::collections::BTreeSet<usize> =
            self.live.iter().map(|s| s.addr() / page).collect();
        assert_eq!(stats.pages_occupied, occupied.len());
        assert_eq!(self.pool.occupied_pages(), occupied.len());
        let pagesets = self.pool.pagesets();
        assert_eq!(pagesets.len(), self.pagesets.len());
        for p in &pagesets {
            let m = self
                .pagesets
                .get(&p.id)
                .expect("pageset known to the model");
            assert_eq!(
                (p.assigned, p.free, p.draining),
                (m.assigned, self.cap - m.assigned, m.draining)
            );
            let live: Vec<Slot> = self.pool.live_slots(p.id).collect();
            assert_eq!(live.len(), m.assigned);
            assert!(
                live.windows(2).all(|w| w[0] < w[1]),
                "live slots not in address order"
            );
            for slot in live {
                assert_eq!(self.slot_pageset.get(&slot), Some(&p.id));
            }
        }
        for &slot in &self.live {
            for cpu in 0..self.pool.ncpu() {
                for w in 0..self.pool.class().bytes() / 8 {
                    let want = self.cells.get(&(slot, cpu, w)).copied().unwrap_or(0);
                    assert_eq!(self.cell(slot, cpu, w).load(Ordering::Relaxed), want);
                }
            }
        }
    }
}
