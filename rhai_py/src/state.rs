//! Per-run state, kept in thread-locals for the duration of one run.
//!
//! A run executes entirely on one OS thread, so the engine's hooks (`on_progress`, `on_print`,
//! `on_debug`, `on_var`) find the state of *their* run in thread-locals. This lets a single
//! `rhai::Engine` serve many threads at once: nothing per-run lives in the engine.
//! [`RunScope`] installs a fresh state and restores the previous one when dropped, so a run
//! started from inside a host callback (re-entrancy) does not disturb the outer run.

use rhai::Dynamic;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Instant;

use crate::errors::Termination;

/// Marker appended to the logs once output has been cut at `max_output_size`.
pub const TRUNCATION_MARKER: &str = "[output truncated: max_output_size reached]";

/// Stop a run when less than this much stack is left (checked on every operation).
pub const STACK_GUARD_BYTES: usize = 256 * 1024;

/// How often (in operations) the wall clock is read for the timeout.
const CLOCK_EVERY: u64 = 256;

#[derive(Default)]
struct Output {
    logs: Vec<String>,
    bytes: usize,
    max_bytes: usize,
    truncated: bool,
}

thread_local! {
    static OPS: Cell<u64> = const { Cell::new(0) };
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static HAS_CONSTANTS: Cell<bool> = const { Cell::new(false) };
    static OUTPUT: RefCell<Output> = RefCell::new(Output::default());
    static CONSTANTS: RefCell<HashMap<String, Dynamic>> = RefCell::new(HashMap::new());
}

/// What a finished run leaves behind.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    /// Captured `print`/`debug` lines (with [`TRUNCATION_MARKER`] last if cut).
    pub logs: Vec<String>,
    /// Whether output was cut at `max_output_size`.
    pub truncated: bool,
    /// Operations counted by Rhai.
    pub operations: u64,
}

/// Guard owning the current thread's run state; restores the previous state on drop.
pub struct RunScope {
    saved_ops: u64,
    saved_deadline: Option<Instant>,
    saved_has_constants: bool,
    saved_output: Output,
    saved_constants: HashMap<String, Dynamic>,
    finished: bool,
}

impl RunScope {
    /// Install a fresh state for a run on this thread.
    pub fn enter(
        deadline: Option<Instant>,
        max_output_bytes: usize,
        constants: HashMap<String, Dynamic>,
    ) -> Self {
        let has_constants = !constants.is_empty();
        let fresh = Output { max_bytes: max_output_bytes, ..Output::default() };
        RunScope {
            saved_ops: OPS.replace(0),
            saved_deadline: DEADLINE.replace(deadline),
            saved_has_constants: HAS_CONSTANTS.replace(has_constants),
            saved_output: OUTPUT.with(|o| o.replace(fresh)),
            saved_constants: CONSTANTS.with(|c| c.replace(constants)),
            finished: false,
        }
    }

    /// Collect this run's results and restore the previous state.
    pub fn finish(mut self) -> RunStats {
        let stats = self.restore();
        self.finished = true;
        stats
    }

    fn restore(&mut self) -> RunStats {
        let operations = OPS.replace(self.saved_ops);
        DEADLINE.set(self.saved_deadline);
        HAS_CONSTANTS.set(self.saved_has_constants);
        let out = OUTPUT.with(|o| o.replace(std::mem::take(&mut self.saved_output)));
        CONSTANTS.with(|c| c.replace(std::mem::take(&mut self.saved_constants)));
        RunStats { logs: out.logs, truncated: out.truncated, operations }
    }
}

impl Drop for RunScope {
    fn drop(&mut self) {
        if !self.finished {
            self.restore();
        }
    }
}

/// `on_progress` hook: record the count, enforce the deadline and the stack guard.
#[inline]
pub fn on_progress(ops: u64) -> Option<Dynamic> {
    OPS.set(ops);
    if ops % CLOCK_EVERY == 0 {
        if let Some(deadline) = DEADLINE.get() {
            if Instant::now() >= deadline {
                return Some(Dynamic::from(Termination::Timeout));
            }
        }
    }
    match stacker::remaining_stack() {
        Some(left) if left < STACK_GUARD_BYTES => Some(Dynamic::from(Termination::StackExhausted)),
        _ => None,
    }
}

/// Has the current run's deadline passed? (Also checked right after host callbacks.)
pub fn deadline_passed() -> bool {
    DEADLINE.get().is_some_and(|d| Instant::now() >= d)
}

/// `print`/`debug` hook: append to the run's log, respecting the byte cap.
pub fn push_log(text: &str) {
    OUTPUT.with(|o| {
        let mut out = o.borrow_mut();
        if out.truncated {
            return;
        }
        let room = out.max_bytes.saturating_sub(out.bytes);
        if text.len() <= room {
            out.bytes += text.len();
            out.logs.push(text.to_string());
        } else {
            let mut cut = room;
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut > 0 {
                out.logs.push(text[..cut].to_string());
            }
            out.bytes += cut;
            out.logs.push(TRUNCATION_MARKER.to_string());
            out.truncated = true;
        }
    });
}

/// Value of a per-run constant, if the run has one with this name.
#[inline]
pub fn constant(name: &str) -> Option<Dynamic> {
    if !HAS_CONSTANTS.get() {
        return None;
    }
    CONSTANTS.with(|c| c.borrow().get(name).cloned())
}
