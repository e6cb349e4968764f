//! Domains by index: an inline counter's state word names its domain in 11 bits
//! ([`crate::word`]), so every domain a process builds gets a small index here and lives for
//! the rest of the process (`&'static`). Index 0 is [`Domain::global`].
//!
//! Domains are allocators, built a few times per process (one per subsystem, say), so
//! keeping them is cheap; what it buys is a counter that is two words, has no lifetime
//! parameter and can sit in a `static` or behind the `metrics` facade.

use crate::domain::Domain;
use crate::word::MAX_DOMAINS;
use crate::CounterError;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Domains 1.. (0, the global one, lives in its own `OnceLock`).
static DOMAINS: [AtomicPtr<Domain>; MAX_DOMAINS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_DOMAINS];
/// The next free index.
static NEXT: AtomicUsize = AtomicUsize::new(1);

/// Keeps `domain` for the rest of the process and gives it an index.
///
/// # Errors
/// [`CounterError::Config`] once [`MAX_DOMAINS`] − 1 domains have been built.
pub(crate) fn register(
    make: impl FnOnce(usize) -> Domain,
) -> Result<&'static Domain, CounterError> {
    let index = NEXT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < MAX_DOMAINS).then_some(n + 1)
        })
        .map_err(|_| CounterError::Config("a process can build at most 2047 domains"))?;
    let domain: &'static Domain = Box::leak(Box::new(make(index)));
    // Release: a thread that finds the pointer (through a counter word made after this
    // returns) sees the domain initialised.
    DOMAINS[index].store(domain as *const Domain as *mut Domain, Ordering::Release);
    Ok(domain)
}

/// The domain with index `index`.
///
/// # Panics
/// If no domain has that index: a word names only domains that were registered before it
/// was made, so this is a bug in this crate.
#[inline]
pub(crate) fn get(index: usize) -> &'static Domain {
    if index == 0 {
        return Domain::global();
    }
    let ptr = DOMAINS[index].load(Ordering::Acquire);
    assert!(
        !ptr.is_null(),
        "pcpu: counter word names unknown domain {index}"
    );
    // SAFETY: non-null entries come from `Box::leak` in `register` and are never freed.
    unsafe { &*ptr }
}
