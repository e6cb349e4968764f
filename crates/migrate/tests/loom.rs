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

    /// The relocator: claim, disable, grace period, copy + publish, readers' grace period,
    /// then retire the old cells (scribble on them, as a reuse would).
    fn relocate(&self) {
        assert!(self.header.try_claim(self.old.as_ptr() as usize));
        self.header.disable();
        pcpu_rseq::synchronize().unwrap();
        self.header.move_to(self.new.as_ptr() as usize, |old, new| {
            assert_eq!(old, self.old.as_ptr() as usize);
            assert_eq!(new, self.new.as_ptr() as usize);
            for (o, n) in self.old.iter().zip(&self.new) {
                n.store(o.load(Ordering::Relaxed), Ordering::Relaxed);
            }
        });
        pcpu_rseq::epoch_grace_period();
        for o in &self.old {
            o.store(1_000_000, Ordering::Relaxed);
        }
        self.header.finish();
    }

    fn exact(&self) -> i64 {
        let _guard = pcpu_rseq::epoch::pin();
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
/// the old cells after they were retired.
#[test]
fn relocation_against_exact_read() {
    loom::model(|| {
        let w = World::new([3, 4]);
        let reader = {
            let w = Arc::clone(&w);
            loom::thread::spawn(move || w.exact())
        };
        w.relocate();
        assert_eq!(reader.join().unwrap(), 7, "a quiescent read is exact");
        assert_eq!(w.exact(), 7);
    });
}
