//! Occupancy buckets: find the fullest pageset that still has room in O(capacity / 64) word
//! tests (at most 32 for the default geometry), independent of the number of pagesets.
//!
//! Bucket `k` lists the assignable pagesets (not draining, with at least one free slot:
//! neither assigned nor retired) with exactly `k` assigned slots, as an intrusive doubly-linked list over pageset indices; a bitmap marks
//! the non-empty buckets. Moving a pageset between buckets allocates nothing, so assignment
//! and unassignment keep working when the heap is exhausted (under `RLIMIT_AS`).

use crate::PagesetError;

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
    /// Bucket this index is in, or `NONE`.
    bucket: u32,
}

const UNLINKED: Link = Link {
    prev: NONE,
    next: NONE,
    bucket: NONE,
};

#[derive(Debug)]
pub(crate) struct Buckets {
    heads: Vec<u32>,
    nonempty: Vec<u64>,
    links: Vec<Link>,
}

impl Buckets {
    /// Buckets for occupancies `0..capacity`.
    pub fn new(capacity: usize) -> Buckets {
        Buckets {
            heads: vec![NONE; capacity],
            nonempty: vec![0; capacity.div_ceil(64)],
            links: Vec::new(),
        }
    }

    /// Makes room for pageset index `index` (fallibly).
    pub fn reserve_index(&mut self, index: u32) -> Result<(), PagesetError> {
        let need = index as usize + 1;
        if self.links.len() < need {
            self.links
                .try_reserve(need - self.links.len())
                .map_err(|_| PagesetError::OutOfMemory {
                    bytes: need * size_of::<Link>(),
                })?;
            self.links.resize(need, UNLINKED);
        }
        Ok(())
    }

    pub fn insert(&mut self, index: u32, occupancy: usize) {
        debug_assert_eq!(self.links[index as usize].bucket, NONE);
        let head = self.heads[occupancy];
        self.links[index as usize] = Link {
            prev: NONE,
            next: head,
            bucket: occupancy as u32,
        };
        if head != NONE {
            self.links[head as usize].prev = index;
        }
        self.heads[occupancy] = index;
        self.nonempty[occupancy / 64] |= 1 << (occupancy % 64);
    }

    /// Removes `index` from its bucket, if it is in one.
    pub fn remove(&mut self, index: u32) {
        let Link { prev, next, bucket } = self.links[index as usize];
        if bucket == NONE {
            return;
        }
        if prev != NONE {
            self.links[prev as usize].next = next;
        } else {
            self.heads[bucket as usize] = next;
            if next == NONE {
                self.nonempty[bucket as usize / 64] &= !(1 << (bucket % 64));
            }
        }
        if next != NONE {
            self.links[next as usize].prev = prev;
        }
        self.links[index as usize] = UNLINKED;
    }

    /// The first pageset of the fullest non-empty bucket.
    pub fn densest(&self) -> Option<u32> {
        let (w, word) = self
            .nonempty
            .iter()
            .enumerate()
            .rev()
            .find(|(_, &w)| w != 0)?;
        let bucket = w * 64 + 63 - word.leading_zeros() as usize;
        Some(self.heads[bucket])
    }
}
