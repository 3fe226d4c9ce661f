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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::errors::Termination;
use crate::memory;
use crate::priority::{self, Demotion};
use crate::tap::{LogTap, RunControl};

/// Marker appended to the logs once output has been cut at `max_output_size`.
pub const TRUNCATION_MARKER: &str = "[output truncated: max_output_size reached]";

/// Stop a run when less than this much stack is left (checked on every operation).
pub const STACK_GUARD_BYTES: usize = 256 * 1024;
/// Most stack the evaluation itself may use (deep recursion stops with kind `stack` there);
/// the rest of a run's stack is for dropping nested values, which Rhai does recursively
/// and without calling `on_progress` (see `runner::RUN_STACK_PER_BUDGET_BYTE`).
pub const EVAL_STACK_BYTES: usize = 48 * 1024 * 1024;

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
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
    static DEMOTION: Cell<Option<Demotion>> = const { Cell::new(None) };
    static DEMOTABLE: Cell<bool> = const { Cell::new(false) };
    static HAS_CONSTANTS: Cell<bool> = const { Cell::new(false) };
    static MAX_MEMORY: Cell<usize> = const { Cell::new(usize::MAX) };
    static STACK_FLOOR: Cell<usize> = const { Cell::new(STACK_GUARD_BYTES) };
    static OUTPUT: RefCell<Output> = RefCell::new(Output::default());
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    static TAP: RefCell<Option<LogTap>> = const { RefCell::new(None) };
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
    /// Most heap bytes the run held at once (see [`crate::memory`]).
    pub peak_memory: usize,
    /// Heap bytes the run still held when it finished (its value, and anything it leaked).
    pub held_at_end: usize,
}

/// Guard owning the current thread's run state; restores the previous state on drop.
pub struct RunScope {
    saved_ops: u64,
    saved_deadline: Option<Instant>,
    saved_started: Option<Instant>,
    saved_demotable: bool,
    saved_has_constants: bool,
    saved_max_memory: usize,
    saved_stack_floor: usize,
    saved_account: memory::Account,
    saved_output: Output,
    saved_constants: HashMap<String, Dynamic>,
    saved_cancel: Option<Arc<AtomicBool>>,
    saved_tap: Option<LogTap>,
    finished: bool,
}

impl RunScope {
    /// Install a fresh state for a run on this thread.
    pub fn enter(
        deadline: Option<Instant>,
        max_output_bytes: usize,
        max_memory_bytes: usize,
        constants: HashMap<String, Dynamic>,
        control: RunControl,
    ) -> Self {
        let has_constants = !constants.is_empty();
        let fresh = Output { max_bytes: max_output_bytes, ..Output::default() };
        RunScope {
            saved_ops: OPS.replace(0),
            saved_deadline: DEADLINE.replace(deadline),
            saved_started: STARTED.replace(Some(Instant::now())),
            // A nested run (from a host callback) never demotes: its outer run decides.
            saved_demotable: DEMOTABLE.replace(DEMOTION.get().is_none() && !DEMOTABLE.get()),
            saved_has_constants: HAS_CONSTANTS.replace(has_constants),
            saved_max_memory: MAX_MEMORY.replace(max_memory_bytes),
            saved_stack_floor: STACK_FLOOR.replace(stack_floor()),
            saved_account: memory::begin(),
            saved_output: OUTPUT.with(|o| o.replace(fresh)),
            saved_constants: CONSTANTS.with(|c| c.replace(constants)),
            saved_cancel: CANCEL.with(|c| c.replace(control.cancel)),
            saved_tap: TAP.with(|t| t.replace(control.tap)),
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
        STARTED.set(self.saved_started);
        if DEMOTABLE.replace(self.saved_demotable) {
            if let Some(demotion) = DEMOTION.take() {
                priority::restore(demotion);
            }
        }
        HAS_CONSTANTS.set(self.saved_has_constants);
        MAX_MEMORY.set(self.saved_max_memory);
        STACK_FLOOR.set(self.saved_stack_floor);
        let out = OUTPUT.with(|o| o.replace(std::mem::take(&mut self.saved_output)));
        CONSTANTS.with(|c| c.replace(std::mem::take(&mut self.saved_constants)));
        CANCEL.with(|c| c.replace(self.saved_cancel.take()));
        // The tap's list may be freed here (its reader gone): not the run's memory either way.
        memory::untracked(|| drop(TAP.with(|t| t.replace(self.saved_tap.take()))));
        let usage = memory::end(self.saved_account);
        RunStats {
            logs: out.logs,
            truncated: out.truncated,
            operations,
            peak_memory: usage.peak,
            held_at_end: usage.net.max(0) as usize,
        }
    }
}

impl Drop for RunScope {
    fn drop(&mut self) {
        if !self.finished {
            self.restore();
        }
    }
}

/// `on_progress` hook: record the count, enforce the memory budget, the deadline and the
/// stack guard.
#[inline]
pub fn on_progress(ops: u64) -> Option<Dynamic> {
    OPS.set(ops);
    if memory::live_bytes() > MAX_MEMORY.get() {
        return Some(Dynamic::from(Termination::MemoryExhausted));
    }
    if ops % CLOCK_EVERY == 0 {
        if let Some(deadline) = DEADLINE.get() {
            if Instant::now() >= deadline {
                return Some(Dynamic::from(Termination::Timeout));
            }
        }
        if cancelled() {
            return Some(Dynamic::from(Termination::Cancelled));
        }
        if DEMOTABLE.get() && DEMOTION.get().is_none() {
            // One reading of the clock: with a second one after a "not yet", a run preempted
            // between the two crossed the threshold unseen and was marked undemotable for good.
            if STARTED.get().is_some_and(|started| started.elapsed() >= priority::DEMOTE_AFTER) {
                match priority::demote() {
                    Some(demotion) => DEMOTION.set(Some(demotion)),
                    None => DEMOTABLE.set(false), // could not: do not try on every check
                }
            }
        }
    }
    match stacker::remaining_stack() {
        Some(left) if left < STACK_FLOOR.get() => Some(Dynamic::from(Termination::StackExhausted)),
        _ => None,
    }
}

/// The remaining stack below which a run starting here is stopped: [`EVAL_STACK_BYTES`] below
/// this point, and never closer to the end than [`STACK_GUARD_BYTES`].
fn stack_floor() -> usize {
    let left = stacker::remaining_stack().unwrap_or(0);
    left.saturating_sub(EVAL_STACK_BYTES).max(STACK_GUARD_BYTES)
}

/// Has the current run been cancelled (its token set from another thread)?
pub fn cancelled() -> bool {
    CANCEL.with(|c| c.borrow().as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)))
}

/// Has the current run's deadline passed? (Also checked right after host callbacks.)
pub fn deadline_passed() -> bool {
    DEADLINE.get().is_some_and(|d| Instant::now() >= d)
}

/// `print`/`debug` hook: append to the run's log, respecting the byte cap, and to its tap.
pub fn push_log(text: &str) {
    let kept = keep_log(text);
    if kept.is_empty() {
        return;
    }
    TAP.with(|t| {
        if let Some(tap) = t.borrow().as_ref() {
            for line in kept {
                tap.push(line);
            }
        }
    });
}

/// Append `text` to the run's log within its byte cap; the lines kept (the text, a cut of it
/// and the truncation marker, or nothing once cut).
fn keep_log(text: &str) -> Vec<&str> {
    OUTPUT.with(|o| {
        let mut out = o.borrow_mut();
        if out.truncated {
            return Vec::new();
        }
        let room = out.max_bytes.saturating_sub(out.bytes);
        if text.len() <= room {
            out.bytes += text.len();
            out.logs.push(text.to_string());
            return vec![text];
        }
        let mut cut = room;
        while cut > 0 && !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut kept = Vec::with_capacity(2);
        if cut > 0 {
            out.logs.push(text[..cut].to_string());
            kept.push(&text[..cut]);
        }
        out.bytes += cut;
        out.logs.push(TRUNCATION_MARKER.to_string());
        out.truncated = true;
        kept.push(TRUNCATION_MARKER);
        kept
    })
}

/// Value of a per-run constant, if the run has one with this name.
#[inline]
pub fn constant(name: &str) -> Option<Dynamic> {
    if !HAS_CONSTANTS.get() {
        return None;
    }
    CONSTANTS.with(|c| c.borrow().get(name).cloned())
}
