//! Random operation sequences with [`Pool::retire`] against a reference model of its own.
//!
//! The shared pool model (`pcpu_testkit::pageset_model`, also run by the `pageset` fuzz target)
//! has no retired slots; this one models them: a retired address is never handed out again,
//! the counts (`assigned`, `retired`, `free = capacity - assigned - retired`) agree with the
//! pool's, `live_slots` lists assigned slots only, a retired slot keeps its contents until a
//! release discards its page (which happens exactly when the page holds no assigned slot
//! and was written since its last release), and a pageset holding a retired slot is never
//! unmapped nor kept for reuse ([`PoolConfig::keep_address_space`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use pcpu_pageset::{page_size, PagesetError, PagesetId, Pool, PoolConfig, SizeClass, Slot};
use proptest::prelude::*;

/// Whether a release really discards pages (`MADV_DONTNEED` zeroes private anonymous memory
/// on Linux; elsewhere the pool releases nothing page by page).
const DISCARDS: bool = cfg!(any(target_os = "linux", target_os = "android"));

#[derive(Clone, Debug)]
enum Op {
    Assign,
    AssignBatch {
        n: usize,
        lines: bool,
    },
    Unassign {
        pick: usize,
    },
    UnassignBatch {
        pick: usize,
        n: usize,
    },
    Retire {
        pick: usize,
    },
    /// Unassign or retire a retired slot, alone or in a batch with live slots: must fail and
    /// change nothing.
    Misuse {
        pick: usize,
        how: u8,
    },
    Write {
        pick: usize,
        cpu: usize,
        word: usize,
        value: u64,
    },
    SetDraining {
        pick: usize,
        on: bool,
    },
    Release,
    Check,
}

impl Op {
    fn decode(kind: u8, a: u64, b: u64, c: u64) -> Op {
        let (a, b) = (a as usize, b as usize);
        match kind % 16 {
            0..=2 => Op::Assign,
            3 => Op::AssignBatch {
                n: b % 48,
                lines: c % 2 == 1,
            },
            4 | 5 => Op::Unassign { pick: a },
            6 => Op::UnassignBatch { pick: a, n: b % 8 },
            7 | 8 => Op::Retire { pick: a },
            9 => Op::Misuse {
                pick: a,
                how: (b % 3) as u8,
            },
            10 | 11 => Op::Write {
                pick: a,
                cpu: b,
                word: b >> 16,
                value: c,
            },
            12 => Op::SetDraining {
                pick: a,
                on: b % 2 == 0,
            },
            13 => Op::Release,
            14 => Op::Retire { pick: a },
            _ => Op::Check,
        }
    }
}

#[derive(Debug)]
struct PagesetModel {
    base: usize,
    assigned: BTreeSet<usize>,
    retired: BTreeSet<usize>,
    draining: bool,
    /// Page reads zero and holds no memory (never assigned since its mapping or last release).
    clean: Vec<bool>,
}

struct Harness {
    pool: Pool,
    cap: usize,
    size: usize,
    keep: bool,
    /// Assigned slots, in a stable order for picking.
    live: Vec<Slot>,
    /// Every slot ever retired (a pageset holding one is never unmapped, so all are mapped).
    retired: Vec<Slot>,
    retired_set: HashSet<Slot>,
    /// Expected non-zero cell contents of assigned and retired slots: (slot, cpu, word).
    cells: HashMap<(Slot, usize, usize), u64>,
    pagesets: BTreeMap<PagesetId, PagesetModel>,
    /// Emptied pagesets kept for reuse (with `keep`).
    kept: usize,
}

impl Harness {
    fn new(class: u8, ncpu: u8, pages: u8, keep: bool, probe: bool) -> Harness {
        let class = SizeClass::ALL[class as usize % SizeClass::ALL.len()];
        let config = PoolConfig::new(class)
            .with_ncpu(1 + ncpu as usize % 4)
            .with_unit_bytes((1 + pages as usize % 2) * page_size())
            .with_keep_address_space(keep);
        let mut pool = Pool::new(config).expect("valid config");
        pool.set_pagemap_probe(probe);
        Harness {
            cap: pool.slots_per_pageset(),
            size: class.bytes(),
            pool,
            keep,
            live: Vec::new(),
            retired: Vec::new(),
            retired_set: HashSet::new(),
            cells: HashMap::new(),
            pagesets: BTreeMap::new(),
            kept: 0,
        }
    }

    fn cell(&self, slot: Slot, cpu: usize, word: usize) -> &AtomicU64 {
        assert!(cpu < self.pool.ncpu() && word < self.size / 8);
        let addr = slot.addr() + cpu * self.pool.stride() + word * 8;
        // SAFETY: `slot` is an assigned or retired slot of `self.pool` (callers pass no
        // other), so its pageset is mapped while the pool, borrowed with `self`, lives; the
        // cell is in bounds (checked above) and 8-aligned; all accesses here are atomic.
        unsafe { AtomicU64::from_ptr(addr as *mut u64) }
    }

    fn free(&self, p: &PagesetModel) -> usize {
        self.cap - p.assigned.len() - p.retired.len()
    }

    /// Pageset id, slot index and page of a slot of a pageset the model knows.
    fn place(&self, slot: Slot) -> (PagesetId, usize, usize) {
        let id = self
            .pool
            .pageset_of(slot)
            .expect("slot of a mapped pageset");
        let base = self.pagesets[&id].base;
        let offset = slot.addr() - base;
        (id, offset / self.size, offset / page_size())
    }

    /// Records a slot the pool has just assigned; returns whether its pageset is new.
    fn record_assigned(&mut self, slot: Slot) -> bool {
        assert!(
            !self.retired_set.contains(&slot),
            "retired slot {slot:?} handed out again"
        );
        assert!(!self.live.contains(&slot), "slot {slot:?} handed out twice");
        for cpu in 0..self.pool.ncpu() {
            for w in 0..self.size / 8 {
                assert_eq!(self.cell(slot, cpu, w).load(Ordering::Relaxed), 0);
            }
        }
        let id = self
            .pool
            .pageset_of(slot)
            .expect("assigned slot has a pageset");
        let new = !self.pagesets.contains_key(&id);
        if new {
            let base = self.pool.pageset_stats(id).unwrap().base;
            let pages = self.pool.stride() / page_size();
            self.pagesets.insert(
                id,
                PagesetModel {
                    base,
                    assigned: BTreeSet::new(),
                    retired: BTreeSet::new(),
                    draining: false,
                    clean: vec![true; pages],
                },
            );
            if self.kept > 0 {
                self.kept -= 1; // the pool reuses a kept mapping first
            }
        }
        let (id, s, page) = self.place(slot);
        let ps = self.pagesets.get_mut(&id).unwrap();
        assert!(!ps.draining, "assigned from a draining pageset");
        assert!(ps.assigned.insert(s) && !ps.retired.contains(&s));
        ps.clean[page] = false;
        self.live.push(slot);
        new
    }

    fn forget_cells(&mut self, slot: Slot) {
        for cpu in 0..self.pool.ncpu() {
            for w in 0..self.size / 8 {
                self.cells.remove(&(slot, cpu, w));
            }
        }
    }

    fn unassigned(&mut self, slot: Slot) {
        let (id, s, _) = self.place(slot);
        assert!(self.pagesets.get_mut(&id).unwrap().assigned.remove(&s));
        self.forget_cells(slot);
    }

    fn assignable(&self) -> usize {
        self.pagesets
            .values()
            .filter(|p| !p.draining)
            .map(|p| self.free(p))
            .sum()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Assign => {
                let densest = self
                    .pagesets
                    .values()
                    .filter(|p| !p.draining && self.free(p) > 0)
                    .map(|p| p.assigned.len())
                    .max();
                let slot = self.pool.assign().expect("assign");
                let id = self.pool.pageset_of(slot).unwrap();
                let had = self.pagesets.get(&id).map(|p| p.assigned.len());
                assert_eq!(had, densest, "densest (by assigned slots) first");
                self.record_assigned(slot);
            }
            Op::AssignBatch { n, lines } => {
                let need = n.saturating_sub(self.assignable()).div_ceil(self.cap);
                let mut out = Vec::new();
                if lines {
                    self.pool.assign_lines(n, &mut out).expect("assign_lines");
                } else {
                    self.pool.assign_batch(n, &mut out).expect("assign_batch");
                }
                assert_eq!(out.len(), n);
                let new: usize = out
                    .into_iter()
                    .map(|slot| usize::from(self.record_assigned(slot)))
                    .sum();
                assert_eq!(new, need, "pagesets mapped for the batch");
            }
            Op::Unassign { pick } => {
                if self.live.is_empty() {
                    return;
                }
                let slot = self.live.swap_remove(pick % self.live.len());
                self.pool.unassign(slot).expect("unassign of a live slot");
                self.unassigned(slot);
            }
            Op::UnassignBatch { pick, n } => {
                let n = n.min(self.live.len());
                if n == 0 {
                    return;
                }
                let start = pick % self.live.len();
                let batch: Vec<Slot> = (0..n)
                    .map(|i| self.live[(start + i) % self.live.len()])
                    .collect();
                self.pool.unassign_batch(&batch).expect("unassign_batch");
                for slot in batch {
                    self.live.retain(|&s| s != slot);
                    self.unassigned(slot);
                }
            }
            Op::Retire { pick } => {
                if self.live.is_empty() {
                    return;
                }
                let slot = self.live.swap_remove(pick % self.live.len());
                self.pool.retire(slot).expect("retire of a live slot");
                let (id, s, _) = self.place(slot);
                let ps = self.pagesets.get_mut(&id).unwrap();
                assert!(ps.assigned.remove(&s) && ps.retired.insert(s));
                // Its cells keep their contents: the model's `cells` entries stay.
                self.retired.push(slot);
                self.retired_set.insert(slot);
            }
            Op::Misuse { pick, how } => {
                if self.retired.is_empty() {
                    return;
                }
                let slot = self.retired[pick % self.retired.len()];
                let before = self.pool.stats();
                let err = match how {
                    0 => self.pool.unassign(slot),
                    1 => self.pool.retire(slot),
                    _ => {
                        let mut batch: Vec<Slot> = self.live.iter().take(3).copied().collect();
                        batch.push(slot);
                        self.pool.unassign_batch(&batch)
                    }
                }
                .expect_err("a retired slot is not assigned");
                assert!(matches!(err, PagesetError::NotAssigned(s) if s == slot));
                let after = self.pool.stats();
                assert_eq!(
                    (after.assigned, after.retired, after.free),
                    (before.assigned, before.retired, before.free)
                );
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
                let (cpu, word, value) =
                    (cpu % self.pool.ncpu(), word % (self.size / 8), value | 1);
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
                self.pool.set_draining(id, on).expect("set_draining");
                self.pagesets.get_mut(&id).unwrap().draining = on;
            }
            Op::Release => self.release(),
            Op::Check => self.check(),
        }
    }

    fn release(&mut self) {
        let pages_per_unit = self.pool.stride() / page_size();
        let slots_per_page = page_size() / self.size;
        let empty: Vec<PagesetId> = self
            .pagesets
            .iter()
            .filter(|(_, p)| p.assigned.is_empty() && p.retired.is_empty())
            .map(|(&id, _)| id)
            .collect();
        // In the pagesets that stay: pages holding no assigned slot and written since their
        // last release, on every CPU.
        let mut released = 0;
        let mut zeroed: Vec<Slot> = Vec::new();
        for p in self.pagesets.values_mut() {
            if p.assigned.is_empty() && p.retired.is_empty() {
                continue;
            }
            for page in 0..pages_per_unit {
                let range = page * slots_per_page..(page + 1) * slots_per_page;
                if p.clean[page] || p.assigned.range(range.clone()).next().is_some() {
                    continue;
                }
                if DISCARDS {
                    released += self.pool.ncpu();
                    p.clean[page] = true;
                    zeroed.extend(
                        p.retired
                            .range(range)
                            .map(|&s| slot_at(p.base + s * self.size)),
                    );
                }
            }
        }
        for slot in zeroed {
            self.forget_cells(slot);
        }
        let r = self.pool.release();
        assert_eq!(
            r.pagesets_unmapped,
            empty.len(),
            "only pagesets with nothing assigned or retired"
        );
        assert_eq!(
            r.pages_released, released,
            "pages of free and retired slots only"
        );
        for id in empty {
            self.pagesets.remove(&id);
            assert!(
                self.pool.pageset_stats(id).is_none(),
                "unmapped id still valid"
            );
            self.kept += usize::from(self.keep);
        }
    }

    fn check(&self) {
        let stats = self.pool.stats();
        let retired: usize = self.pagesets.values().map(|p| p.retired.len()).sum();
        assert_eq!(
            retired,
            self.retired.len(),
            "retired pagesets are never unmapped"
        );
        assert_eq!(
            (stats.assigned, stats.retired, stats.free),
            (
                self.live.len(),
                retired,
                self.pagesets.len() * self.cap - self.live.len() - retired
            )
        );
        assert_eq!(stats.pagesets_mapped, self.pagesets.len());
        assert_eq!(
            stats.pagesets_draining,
            self.pagesets.values().filter(|p| p.draining).count()
        );
        assert_eq!(stats.bytes_kept, self.kept * self.pool.pageset_bytes());
        let occupied: BTreeSet<usize> = self.live.iter().map(|s| s.addr() / page_size()).collect();
        assert_eq!(stats.pages_occupied, occupied.len());
        let pagesets = self.pool.pagesets();
        assert_eq!(pagesets.len(), self.pagesets.len());
        for p in &pagesets {
            let m = &self.pagesets[&p.id];
            assert_eq!(
                (p.base, p.assigned, p.retired, p.free, p.draining),
                (
                    m.base,
                    m.assigned.len(),
                    m.retired.len(),
                    self.free(m),
                    m.draining
                )
            );
            let live: Vec<usize> = self
                .pool
                .live_slots(p.id)
                .map(|s| (s.addr() - m.base) / self.size)
                .collect();
            assert!(
                live.iter().copied().eq(m.assigned.iter().copied()),
                "live_slots"
            );
        }
        for &slot in self.live.iter().chain(&self.retired) {
            for cpu in 0..self.pool.ncpu() {
                for w in 0..self.size / 8 {
                    let want = self.cells.get(&(slot, cpu, w)).copied().unwrap_or(0);
                    assert_eq!(
                        self.cell(slot, cpu, w).load(Ordering::Relaxed),
                        want,
                        "slot {slot:?} (retired: {}) cpu {cpu} word {w}",
                        self.retired_set.contains(&slot)
                    );
                }
            }
        }
    }
}

/// The slot at `addr`, an address the model computed in a pageset it knows.
fn slot_at(addr: usize) -> Slot {
    // SAFETY: `addr` is a slot of a mapped pageset of the pool under test (a retired one);
    // the slot is only compared and read through, never written.
    unsafe { Slot::from_addr(addr) }.expect("mappings are not at 0")
}

fn op() -> impl Strategy<Value = Op> {
    (any::<u8>(), any::<u64>(), any::<u64>(), any::<u64>())
        .prop_map(|(k, a, b, c)| Op::decode(k, a, b, c))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    // Minutes per case under Miri; the unit tests run retire there.
    #[cfg_attr(miri, ignore = "too slow interpreted")]
    fn pool_with_retire_matches_model(
        class in 0u8..4,
        ncpu in 0u8..4,
        pages in 0u8..2,
        keep in any::<bool>(),
        probe in any::<bool>(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let mut h = Harness::new(class, ncpu, pages, keep, probe);
        for op in &ops {
            h.apply(op);
        }
        h.check();
        // Retire or free every slot: only the pagesets holding retired slots stay mapped.
        for i in 0..h.live.len() {
            h.apply(&if i % 2 == 0 { Op::Retire { pick: 0 } } else { Op::Unassign { pick: 0 } });
        }
        h.apply(&Op::Release);
        h.check();
        prop_assert_eq!(
            h.pool.stats().pagesets_mapped,
            h.pagesets.values().filter(|p| !p.retired.is_empty()).count()
        );
        // Then everything free is assignable again, and no retired slot comes back.
        let free = h.pool.stats().free;
        for id in h.pagesets.keys().copied().collect::<Vec<_>>() {
            h.pool.set_draining(id, false).unwrap();
            h.pagesets.get_mut(&id).unwrap().draining = false;
        }
        h.apply(&Op::AssignBatch { n: free + 1, lines: false });
        h.check();
    }
}

/// A long fixed-seed sequence over several pagesets, biased so that occupancy rises, then
/// pagesets are drained and their slots retired as a compactor would.
#[test]
#[cfg_attr(miri, ignore = "too slow interpreted")]
fn long_sequence_with_retire() {
    let mut h = Harness::new(3, 3, 0, true, false); // 64-byte class, 4 CPUs, 64 slots
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..6_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let kind = match (i < 3_000, x % 4) {
            (true, 0) | (false, 0 | 1) => [4, 7, 6][(x >> 5) as usize % 3], // free or retire
            _ => ((x >> 8) % 15) as u8,
        };
        h.apply(&Op::decode(kind, x >> 3, x >> 11, x));
        if i % 500 == 0 {
            h.check();
        }
    }
    h.check();
}
