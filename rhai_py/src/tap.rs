//! A run's printed lines, readable from another thread while the run goes on.
//!
//! A [`LogTap`] given to a run receives every line the run's log keeps (the same lines as
//! [`crate::state::RunStats::logs`], the truncation marker included), as it is printed.
//! Another thread [`LogTap::take`]s the lines that came since its last take. The run only
//! holds the mutex to append one line, so a reader never waits long, and neither side needs
//! the other to hold any other lock (the Python binding's GIL among them).
//!
//! The copies the tap keeps are not counted against the run's memory budget: they are bounded
//! by the run's `max_output_size` already, and they are freed by the reader's thread.

use std::sync::{Arc, Mutex};

use crate::memory;

/// A shared list of lines a run appends to and a reader takes from. Clones share the list.
#[derive(Clone, Debug, Default)]
pub struct LogTap {
    lines: Arc<Mutex<Vec<String>>>,
}

impl LogTap {
    /// A new, empty tap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append one line (called on the run's thread, outside the run's memory account).
    pub fn push(&self, line: &str) {
        memory::untracked(|| {
            self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(line.to_string());
        });
    }

    /// The lines appended since the last take, oldest first (empty when there are none).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Lines waiting to be taken.
    pub fn pending(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// What a caller may hand a run besides its script: a flag to stop it, a tap on its log.
#[derive(Clone, Debug, Default)]
pub struct RunControl {
    /// Set from another thread to stop the run at its next check (kind `cancelled`).
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Receives the run's printed lines as they come.
    pub tap: Option<LogTap>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_returns_the_new_lines_once() {
        let tap = LogTap::new();
        tap.push("a");
        tap.push("b");
        assert_eq!(tap.pending(), 2);
        assert_eq!(tap.take(), vec!["a".to_string(), "b".to_string()]);
        assert!(tap.take().is_empty());
        tap.clone().push("c");
        assert_eq!(tap.take(), vec!["c".to_string()]);
    }
}
