//! Where a dropped counter's header block goes: header blocks are 16 bytes, four to a cache
//! line, and each CPU's magazine is refilled with whole lines; a block freed onto another
//! CPU's magazine would be that CPU's next header while its line neighbour is still in use on
//! the first. So a block goes back onto its home magazine, or to the pool when its counter is
//! dropped on another CPU. The thread simulates its CPU (`pcpu_rseq::simulate_cpu`) on a
//! domain of its own.
#![cfg(not(loom))]

use pcpu_counter::{CounterMode, Domain, PercpuCounter};

/// Creates a per-CPU counter on simulated CPU `from` and drops it on `to`, then creates
/// another on `to`: whether the second got the first one's header block.
fn reused_on(domain: &'static Domain, from: usize, to: usize) -> bool {
    // SAFETY: this thread alone uses `domain` (its own: each test here builds its own), so
    // no rseq thread updates its cells or magazines while this thread simulates CPUs.
    unsafe { pcpu_rseq::simulate_cpu(Some(from)) };
    let first = PercpuCounter::new_in(domain, 0).unwrap();
    let block = first
        .header_address()
        .expect("a per-CPU counter has a header");
    // SAFETY: as above.
    unsafe { pcpu_rseq::simulate_cpu(Some(to)) };
    drop(first);
    let second = PercpuCounter::new_in(domain, 0).unwrap();
    let reused = second.header_address() == Some(block);
    drop(second);
    // SAFETY: back to this thread's real CPU (nothing else to undo).
    unsafe { pcpu_rseq::simulate_cpu(None) };
    reused
}

/// A per-CPU domain of two CPUs: every machine that runs the tests has the magazines for them.
fn two_cpu_domain() -> &'static Domain {
    Domain::builder()
        .ncpu(2)
        .mode(CounterMode::PerCpu)
        .build()
        .unwrap()
}

#[test]
fn a_header_block_goes_home_or_to_the_pool() {
    let domain = two_cpu_domain();
    // Dropped on its own CPU: back on top of that CPU's magazine, the next header there.
    assert!(reused_on(domain, 0, 0));
    assert!(reused_on(domain, 1, 1));
    // Dropped on the other CPU: not on that CPU's magazine (it went to the pool), so the
    // other CPU's next header is another block.
    assert!(!reused_on(domain, 0, 1));
    assert!(!reused_on(domain, 1, 0));
    // And home again afterwards.
    assert!(reused_on(domain, 1, 1));
}

/// A lane at or past the header store's magazine count (a simulated CPU here; on the
/// portable backend a lane picks magazine `lane % magazines`) is home too. The slot's space
/// has one magazine more than the domain has CPUs (its pool counts the owner lane), so the
/// header must take the lane modulo its own count, not the space's.
#[test]
fn a_lane_past_the_magazines_keeps_its_block_home() {
    let domain = Domain::builder().mode(CounterMode::PerCpu).build().unwrap();
    let past = pcpu_rseq::possible_cpus();
    assert!(reused_on(domain, past, past));
    assert!(reused_on(domain, past + 1, past + 1));
}

/// A counter whose slot a compaction moved keeps its block's home: dropped on the lane it was
/// created on, its block is that lane's next header again. (Its slot, one the compactor chose
/// from no magazine, goes to the pool.) Before, a relocation forgot the home, and the block
/// went to the pool too: one more pool lock per drop of every relocated counter.
#[test]
fn a_relocated_counter_gives_its_block_back_home() {
    let domain = two_cpu_domain();
    // SAFETY: this thread alone uses `domain`, its own (see `reused_on`).
    unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
    // Four pagesets of 8-byte slots, whatever the page size, so that a compaction empties some.
    let unit = pcpu_pageset::PoolConfig::DEFAULT_UNIT_BYTES.max(pcpu_pageset::page_size());
    let mut all: Vec<PercpuCounter> = (0..4 * unit / 8)
        .map(|_| PercpuCounter::new_in(domain, 1).unwrap())
        .collect();
    // Keep two in ten, created one after the other: blocks that share a line, so that a
    // block given to the pool is not the next refill's (its line is not free).
    let mut i = 0;
    all.retain(|_| {
        let keep = i % 10 < 2;
        i += 1;
        keep
    });
    let before: Vec<_> = all.iter().map(|c| c.slot_address()).collect();
    let report = domain.compact().unwrap();
    assert!(report.slots_moved > 0, "{report:?}");
    let headers: std::collections::HashSet<usize> =
        all.iter().filter_map(|c| c.header_address()).collect();
    let pick = (0..all.len())
        .find(|&k| {
            let h = all[k].header_address().unwrap();
            // Another live block on its line (blocks are 16 bytes, four to a line).
            all[k].slot_address() != before[k]
                && [16, 32, 48].iter().any(|d| headers.contains(&(h ^ d)))
        })
        .expect("a moved counter whose block's line neighbour is live");
    let moved = all.swap_remove(pick);
    let block = moved.header_address();
    let slow_frees = || domain.stats().spaces[0].cache.counters.slow_frees;
    let before_drop = slow_frees();
    drop(moved);
    assert_eq!(slow_frees(), before_drop + 1, "the slot went to the pool");
    let next = PercpuCounter::new_in(domain, 0).unwrap();
    assert_eq!(next.header_address(), block, "the block went home");
    drop(next);
    assert!(all.iter().all(|c| c.sum() == 1));
    drop(all);
    // SAFETY: back to this thread's real CPU.
    unsafe { pcpu_rseq::simulate_cpu(None) };
}
