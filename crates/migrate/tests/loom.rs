//! loom models of the relocation protocol ([`Header`]'s steps, the same code `Space` runs),
//! on the portable backend with crossbeam-epoch under `--cfg crossbeam_loom`.
//!
//! Run: `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 \
//!       cargo test -p pcpu-migrate --release --test loom`
#![cfg(loom)]

use loom::sync::atomic::{AtomicI64, Ordering};
use loom::sync::Arc;
use pcpu_migrate::Header;

const NCPU: usize = 2;
const STRIDE: usize = std::mem::size_of::<AtomicI64>();

struct World {
    header: Header,
    central: AtomicI64,
    old: [AtomicI64; NCPU],
    new: [AtomicI64; NCPU],
}

impl World {
    fn new(old: [i64; NCPU]) -> Arc<World> {
        let w = Arc::new(World {
            header: Header::new(),
            central: AtomicI64::new(0),
            old: old.map(AtomicI64::new),
            new: [AtomicI64::new(0), AtomicI64::new(0)],
        });
        w.header.publish_first(w.old.as_ptr() as usize);
        w
    }

    fn cells_at(&self, addr: usize) -> &[AtomicI64; NCPU] {
        if addr == self.old.as_ptr() as usize {
            &self.old
        } else {
            &self.new
        }
    }

    /// The relocator: claim, disable, grace period, copy + publish, then retire the old cells
    /// at once (scribble on them, as a reuse would): readers take no guard.
    fn relocate(&self) {
        self.relocate_with(true);
    }

    /// [`relocate`](Self::relocate), with the adders' grace period only if `adders` may run.
    /// Without adders it waits for nothing, and leaving it out lets loom explore a reader
    /// that spans the whole move: loom never preempts a thread across another's yield loop
    /// (the grace period spins with yields), so with it the reader would finish first.
    fn relocate_with(&self, adders: bool) {
        assert!(self.header.try_claim(self.old.as_ptr() as usize));
        self.header.disable();
        if adders {
            pcpu_rseq::synchronize().unwrap();
        }
        self.header.move_to(self.new.as_ptr() as usize, |old, new| {
            assert_eq!(old, self.old.as_ptr() as usize);
            assert_eq!(new, self.new.as_ptr() as usize);
            for (o, n) in self.old.iter().zip(&self.new) {
                n.store(o.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        });
        for o in &self.old {
            o.store(1_000_000, Ordering::Relaxed);
        }
        self.header.finish();
    }

    fn exact(&self) -> i64 {
        let cells = self.header.read_consistent(|addr| {
            self.cells_at(addr)
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<i64>()
        });
        self.central.load(Ordering::Relaxed) + cells
    }
}

/// An add racing with a relocation counts exactly once, whichever step it meets.
#[test]
fn relocation_against_add() {
    loom::model(|| {
        let w = World::new([0, 0]);
        let adder = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || {
                pcpu_rseq::simulate_cpu(Some(1));
                // SAFETY: the slot word addresses `old` or `new` (NCPU cells, STRIDE apart),
                // both alive while `w` is.
                match unsafe { pcpu_rseq::add_fold(w.header.slot_word(), STRIDE, NCPU, 1, 100) } {
                    Ok(moved) => w.central.fetch_add(moved, Ordering::Relaxed),
                    Err(_) => w.central.fetch_add(1, Ordering::Relaxed),
                };
            })
        };
        w.relocate();
        adder.join().unwrap();
        assert_eq!(w.exact(), 1, "the add counts exactly once");
        assert!(
            w.old.iter().all(|o| o.load(Ordering::Relaxed) == 1_000_000),
            "no late write"
        );
    });
}

/// A read with no concurrent add is exact across a relocation: it never sees a half copy, nor
/// the old cells after they were retired (at once, with no grace period for readers).
/// Without the write section around the publishing store in `Header::move_to` it returns
/// 1,000,003 (one cell read after its reuse).
#[test]
fn relocation_against_exact_read() {
    loom::model(|| {
        let w = World::new([3, 4]);
        let reader = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || w.exact())
        };
        w.relocate_with(false); // no adder runs
        assert_eq!(reader.join().unwrap(), 7, "a quiescent read is exact");
        assert_eq!(w.exact(), 7);
    });
}

/// Header storage reuse against a compactor: a counter's header block is given back and
/// handed to another counter at once (pcpu-counter's header storage does that), while a
/// compactor that found the header through the slot's owner lane may still hold its address.
/// The owner-lane handshake ([`Compactions`]) must make the reuse wait for an epoch grace
/// period whenever the compactor can have read the address: a compactor never sees a
/// reused block while it holds one.
#[test]
fn header_reuse_against_compactor() {
    use loom::sync::atomic::AtomicUsize;
    use pcpu_migrate::handshake::{Compactions, Release};

    struct Block {
        header: Header,
        cells: [AtomicI64; NCPU],
        /// Bumped when the block is handed to another counter.
        reused: AtomicUsize,
    }

    loom::model(|| {
        let block = Arc::new(Block {
            header: Header::new(),
            cells: [AtomicI64::new(0), AtomicI64::new(0)],
            reused: AtomicUsize::new(0),
        });
        let slot = block.cells.as_ptr() as usize;
        block.header.publish_first(slot);
        // The slot's owner lane, as `Space::attach` writes it.
        let lane = Arc::new(AtomicUsize::new(&block.header as *const Header as usize));
        let compactions = Arc::new(Compactions::new());

        let compactor = {
            let (block, lane, compactions) = (
                Arc::clone(&block),
                Arc::clone(&lane),
                Arc::clone(&compactions),
            );
            loom::thread::spawn(move || {
                let _announced = compactions.announce();
                let _guard = pcpu_rseq::epoch::pin();
                if lane.load(Ordering::Acquire) == 0 {
                    return; // detached before we looked: we never learn the address
                }
                assert_eq!(
                    block.reused.load(Ordering::Acquire),
                    0,
                    "found a reused block"
                );
                // Claim and give back, as a compaction that skips the object would.
                if block.header.try_claim(slot) {
                    block.header.abort();
                }
                assert_eq!(
                    block.reused.load(Ordering::Acquire),
                    0,
                    "the block was reused while a compactor held its address"
                );
            })
        };

        // Detach (the owner lane part of `Space::detach`), then reuse the block.
        lane.store(0, Ordering::Release);
        match compactions.after_lane_cleared() {
            Release::Now => {}
            Release::AfterEpoch => pcpu_rseq::epoch_grace_period(),
        }
        block.reused.store(1, Ordering::Release);
        compactor.join().unwrap();
    });
}
