//! Domains by index: an inline counter's state word names its domain in 11 bits
//! ([`crate::word`]), so every domain a process builds gets a small index here and lives for
//! the rest of the process (`&'static`). Index 0 is [`Domain::global`](crate::Domain::global),
//! kept apart in its own `OnceLock`.
//!
//! Domains are allocators, built a few times per process (one per subsystem, say), so
//! keeping them is cheap; what it buys is a counter that is two words, has no lifetime
//! parameter and can sit in a `static` or behind the `metrics` facade.
//!
//! The table is generic over what it keeps, so that this file needs nothing from
//! `domain.rs`: the one table of domains is a `static` there (`Domain::by_index`).

use crate::word::MAX_DOMAINS;
use crate::CounterError;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// What [`Registry::register`] answers once it is full.
pub(crate) const DOMAINS_FULL: CounterError =
    CounterError::Config("a process can build at most 2047 domains");

/// Values kept for the rest of the process under indexes 1..[`MAX_DOMAINS`].
pub(crate) struct Registry<T> {
    /// Entries 1.. (0 is kept elsewhere).
    entries: [AtomicPtr<T>; MAX_DOMAINS],
    /// The next free index.
    next: AtomicUsize,
}

impl<T> Registry<T> {
    /// An empty table (for a `static`).
    pub(crate) const fn new() -> Self {
        Registry {
            entries: [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_DOMAINS],
            next: AtomicUsize::new(1),
        }
    }

    /// Keeps the value `make` builds for its index for the rest of the process.
    ///
    /// # Errors
    /// [`CounterError::Config`] once [`MAX_DOMAINS`] − 1 values have been kept.
    pub(crate) fn register(
        &self,
        make: impl FnOnce(usize) -> T,
    ) -> Result<&'static T, CounterError> {
        let index = self
            .next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_DOMAINS).then_some(n + 1)
            })
            .map_err(|_| DOMAINS_FULL)?;
        let value: &'static T = Box::leak(Box::new(make(index)));
        // Release: a thread that finds the pointer (through a counter word made after this
        // returns) sees the value initialised.
        self.entries[index].store(value as *const T as *mut T, Ordering::Release);
        Ok(value)
    }

    /// True once [`register`](Self::register) would refuse (a hint: another thread may
    /// register meanwhile).
    pub(crate) fn is_full(&self) -> bool {
        self.next.load(Ordering::Relaxed) >= MAX_DOMAINS
    }

    /// The value with index `index` (1..).
    ///
    /// # Panics
    /// If no value has that index: a word names only domains that were registered before it
    /// was made, so this is a bug in this crate.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> &'static T {
        let ptr = self.entries[index].load(Ordering::Acquire);
        assert!(
            !ptr.is_null(),
            "pcpu: counter word names unknown domain {index}"
        );
        // SAFETY: non-null entries come from `Box::leak` in `register` and are never freed.
        unsafe { &*ptr }
    }
}
