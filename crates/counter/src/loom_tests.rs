//! loom models of the counter's two words ([`crate::words`]): the inline add, the switch to
//! a header and the read, the very code `PercpuCounter` runs, against pcpu-migrate's header
//! steps (attach, relocation) on the portable backend with crossbeam-epoch under loom.
//!
//! Run: `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!       cargo test -p pcpu-counter --release --lib loom`

use crate::word;
use crate::words::Words;
use loom::sync::atomic::{AtomicI64, Ordering};
use loom::sync::Arc;
use pcpu_migrate::Header;

const NCPU: usize = 2;
const STRIDE: usize = core::mem::size_of::<AtomicI64>();
/// A batch no test reaches: adds stay in the cells.
const BATCH: i64 = 100;

/// One counter: its words (whose count is also the central count once there is a header),
/// and the header it switches to, with two sets of cells: the slot it attaches and the one a
/// relocation moves it to.
struct World {
    words: Words<1>,
    header: Header,
    cells: [AtomicI64; NCPU],
    moved: [AtomicI64; NCPU],
}

impl World {
    fn new() -> Arc<World> {
        Arc::new(World {
            words: Words::new(0, word::inline(1, false).unwrap()),
            header: Header::new(),
            cells: [AtomicI64::new(0), AtomicI64::new(0)],
            moved: [AtomicI64::new(0), AtomicI64::new(0)],
        })
    }

    fn header_addr(&self) -> usize {
        &self.header as *const Header as usize
    }

    /// `PercpuCounter::add`: the words' add, with the per-CPU add behind the header, on a
    /// thread that cannot tell its CPU cheaply (every inline add takes the cold path, and notes
    /// nothing: its adds are not sampled).
    fn add(&self, delta: i64) {
        self.add_on(None, delta);
    }

    /// [`add`](Self::add) on a thread whose rseq CPU is `cpu` (`None`: none): an inline add on
    /// the counter's last CPU is the fast path's bare `fetch_add`; one on another CPU takes the
    /// cold path, which adds and then notes the CPU with a CAS of the state word, racing any
    /// switch to a header. (The window clock reads 0: no note in a model upgrades.)
    fn add_on(&self, cpu: Option<u32>, delta: i64) {
        self.words.add(
            delta,
            |h, delta| {
                assert_eq!(
                    h,
                    self.header_addr(),
                    "a header address is the one published"
                );
                // SAFETY: the slot word is disabled or addresses `cells` or `moved` (NCPU
                // cells, STRIDE apart), alive as long as the world.
                match unsafe {
                    pcpu_rseq::add_fold_with(
                        self.header.slot_word(),
                        &pcpu_rseq::FoldParams::new(STRIDE, NCPU, BATCH),
                        delta,
                    )
                } {
                    Ok(moved) => self.words.count().fetch_add(moved, Ordering::Release),
                    Err(_) => self.words.count().fetch_add(delta, Ordering::Relaxed),
                };
            },
            move || cpu,
            |seen, delta| {
                let to_note = |_sampled| cpu.map(|c| c as usize);
                let upgrade = self.words.add_noting(0, seen, delta, to_note, || 0);
                assert_eq!(upgrade, None);
            },
        );
    }

    /// `PercpuCounter::sum`: the words' read (the count first), with the header's cells
    /// read in the header's read section and no guard (as `Space::sum_words`).
    fn sum(&self) -> i64 {
        self.words.read(|_| {
            self.header.read_consistent(|addr| {
                let set = if addr == 0 {
                    return 0;
                } else if addr == self.cells.as_ptr() as usize {
                    &self.cells
                } else {
                    &self.moved
                };
                set.iter().map(|c| c.load(Ordering::Relaxed)).sum::<i64>()
            })
        })
    }

    /// `PercpuCounter::upgrade`: publish the header, then attach it to its slot.
    fn upgrade(&self) {
        let seen = self.words.state();
        assert!(word::is_inline(seen));
        self.words.publish(seen, self.header_addr()).unwrap();
        self.header.model_attach(self.cells.as_ptr() as usize);
    }

    /// A compaction moving the slot from `cells` to `moved` (the steps `Space::compact` runs),
    /// then giving the old slot to another counter at once (scribbling on it, as its new
    /// owner's adds would): readers take no guard, so nothing waits for them.
    fn relocate(&self) {
        self.relocate_with(true);
    }

    /// [`relocate`](Self::relocate), with the adders' grace period only if `adders` may run
    /// (see `Header::model_relocate`).
    fn relocate_with(&self, adders: bool) {
        self.header
            .model_relocate_cells(&self.cells, &self.moved, adders);
    }
}

/// An add racing with the switch to a header counts exactly once, and the adder's own
/// `sum` right after its add sees it, whichever step of the switch it met (the inline count,
/// the header's slow path, or the freshly attached cells).
#[test]
fn upgrade_against_add_then_sum() {
    loom::model(|| {
        let w = World::new();
        let adder = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
                w.add(1);
                assert_eq!(w.sum(), 1, "an add that returned is in the next sum");
            })
        };
        w.upgrade();
        adder.join().unwrap();
        assert_eq!(w.sum(), 1);
        w.add(2);
        assert_eq!(w.sum(), 3);
    });
}

/// Adds that note their CPU (a CAS of the inline state) and adds on the fast path (a bare
/// `fetch_add` after the state word said inline), from two CPUs, against the switch to a
/// header: the notes never undo the switch (a note's CAS fails once the state is the header's
/// address), the switch retries over notes, and every add counts once.
#[test]
fn noted_and_fast_adds_against_upgrade() {
    loom::model(|| {
        let w = World::new();
        let on = |cpu: u32, adds: i64| {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { pcpu_rseq::simulate_cpu(Some(cpu as usize)) };
                for _ in 0..adds {
                    // The first add on a CPU notes it; the next one there is the fast path
                    // (unless the other thread noted its own CPU in between).
                    w.add_on(Some(cpu), 1);
                }
            })
        };
        let (a, b) = (on(0, 2), on(1, 1));
        w.upgrade();
        a.join().unwrap();
        b.join().unwrap();
        assert!(
            !word::is_inline(w.words.state()),
            "a note never undoes the switch"
        );
        assert_eq!(w.sum(), 3);
    });
}

/// Two adders on either side of the switch, and nothing lost.
#[test]
fn two_adders_across_upgrade() {
    loom::model(|| {
        let w = World::new();
        let first = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
                w.add(1);
                w.upgrade();
            })
        };
        let second = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
                w.add(2);
            })
        };
        first.join().unwrap();
        second.join().unwrap();
        assert_eq!(w.sum(), 3);
    });
}

/// After the switch, a relocation of the header's slot against an add and a quiescent read:
/// the inline count and the moved cells together stay exact.
#[test]
fn relocation_after_upgrade_against_add() {
    loom::model(|| {
        let w = World::new();
        w.add(5); // inline
        w.upgrade();
        let adder = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
                w.add(1);
            })
        };
        w.relocate();
        adder.join().unwrap();
        assert_eq!(w.sum(), 6);
    });
}

/// A relocation, with the old slot reused at once, against a concurrent `sum` with no add
/// running: the sum is exact, whether it read the old cells, the new ones, or the old ones
/// after their reuse (then its `seq` check fails and it reads again). Without the write
/// section around the publishing store in `Header::move_to`, it can return 1,000,009 (one
/// cell read after its reuse).
#[test]
fn relocation_against_sum_with_reuse() {
    loom::model(|| {
        let w = World::new();
        w.add(5); // inline
        w.upgrade();
        // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
        // model), so no rseq thread updates this model's memory.
        unsafe { pcpu_rseq::simulate_cpu(Some(0)) };
        w.add(4);
        // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
        // model), so no rseq thread updates this model's memory.
        unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
        w.add(2);
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { pcpu_rseq::simulate_cpu(None) };
        let reader = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || w.sum())
        };
        w.relocate_with(false); // no adder runs
        assert_eq!(reader.join().unwrap(), 11, "a quiescent sum is exact");
        assert_eq!(w.sum(), 11);
    });
}

/// Two threads switching the same counter to different headers: exactly one header wins,
/// and the loser learns which.
#[test]
fn racing_upgrades_agree_on_one_header() {
    loom::model(|| {
        let words: Arc<Words<1>> = Arc::new(Words::new(0, word::inline(1, false).unwrap()));
        let try_with = |h: usize| {
            let words = Arc::clone(&words);
            loom::thread::spawn(move || {
                let seen = words.state();
                if !word::is_inline(seen) {
                    return seen;
                }
                match words.publish(seen, h) {
                    Ok(()) => h,
                    Err(winner) => winner,
                }
            })
        };
        let (a, b) = (try_with(0x1000), try_with(0x2000));
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(a, b, "both see the same header");
        assert_eq!(words.state(), a);
    });
}

/// A fold against a concurrent sum: the folder empties its cell (inside its section) and
/// adds what it took to the count (`Release`); the reader loads the count first (`Acquire`),
/// then the cells. It may miss the fold in flight but never counts it twice. (A `Relaxed`
/// fold fails this model.)
#[test]
fn fold_against_sum_never_double_counts() {
    loom::model(|| {
        let w = World::new();
        w.upgrade();
        // Three in CPU 1's cell, below the batch.
        // SAFETY: under loom every thread runs the portable backend (no rseq section runs in a
        // model), so no rseq thread updates this model's memory.
        unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
        w.add(3);
        // SAFETY: `None` only ends the simulation: this thread goes back to the process's backend.
        unsafe { pcpu_rseq::simulate_cpu(None) };
        let folder = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || {
                // SAFETY: under loom every thread runs the portable backend (no rseq section runs
                // in a model), so no rseq thread updates this model's memory.
                unsafe { pcpu_rseq::simulate_cpu(Some(1)) };
                // SAFETY: as in `World::add`; batch 1 folds the whole cell now.
                let moved = unsafe {
                    pcpu_rseq::add_fold_with(
                        w.header.slot_word(),
                        &pcpu_rseq::FoldParams::new(STRIDE, NCPU, 1),
                        1,
                    )
                }
                .unwrap();
                w.words.count().fetch_add(moved, Ordering::Release);
            })
        };
        // 3 or 4 (before or after the add), or 0 (the fold in flight: emptied from the cell,
        // not yet in the count); never 7 or 8 (the fold counted in both places).
        let seen = w.sum();
        assert!([0, 3, 4].contains(&seen), "a concurrent sum saw {seen}");
        folder.join().unwrap();
        assert_eq!(w.sum(), 4);
    });
}
