//! [`FirstError`]: how the loops that return many slots or visit every CPU report failure. They
//! keep going after an error (a refused slot must not strand the others in a magazine, a CPU
//! out of range must not leave the next CPUs undrained) and report the first error at the end.

/// The first error seen by a loop that does not stop at errors.
#[derive(Debug)]
pub(crate) struct FirstError<E>(Option<E>);

impl<E> FirstError<E> {
    /// No error yet.
    pub(crate) const fn new() -> Self {
        FirstError(None)
    }

    /// Keeps `e` if it is the first error.
    pub(crate) fn note(&mut self, e: E) {
        self.0.get_or_insert(e);
    }

    /// The value of `r`, or `None` after keeping its error if it is the first.
    pub(crate) fn ok<T>(&mut self, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.note(e)).ok()
    }

    /// `Ok(value)` if no error was seen, else the first error.
    pub(crate) fn into_result<T>(self, value: T) -> Result<T, E> {
        match self.0 {
            None => Ok(value),
            Some(e) => Err(e),
        }
    }
}
