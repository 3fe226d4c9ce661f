//! Running one script: source-size check, cache, per-run state, its own stack, timing, and
//! the release of what the run leaves behind.

use rhai::{Array, Dynamic, Engine, Map, Position, Scope};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cache::ScriptCache;
use crate::errors::{ErrorKind, ScriptFailure};
use crate::limits::Limits;
use crate::memory;
use crate::reclaim;
use crate::state::{RunScope, RunStats};
use crate::tap::RunControl;

/// The smallest stack a run gets (the evaluation's own share, `state::EVAL_STACK_BYTES`, and room).
pub const MIN_RUN_STACK_BYTES: usize = 64 * 1024 * 1024;
/// Bytes of stack reserved per byte of the memory budget. Rhai drops nested values
/// recursively, also in the middle of a run (a variable reassigned, a block left), and a chain
/// costs more stack to drop than it holds on the heap: at most 2.8 bytes of stack per byte of
/// heap for the shapes measured with `examples/drop_depth.rs` (closure chains, closures in
/// arrays, in arrays of arrays, in maps; docs/SCRIPTING.md, "Memory"). A chain can only be as
/// long as the budget lets it grow, so a stack of 8x the budget can always drop it. The stack
/// is reserved address space: only the pages a run touches are ever backed by memory, and
/// they are returned when the run ends.
pub const RUN_STACK_PER_BUDGET_BYTE: usize = 8;

/// Above this peak, the allocator is asked to give freed memory back to the system after a run.
pub const RELEASE_TO_OS_ABOVE_BYTES: usize = 32 * 1024 * 1024;

/// The stack a run under `limits` is given.
pub fn run_stack_bytes(limits: &Limits) -> usize {
    limits.max_memory_bytes.saturating_mul(RUN_STACK_PER_BUDGET_BYTE).max(MIN_RUN_STACK_BYTES)
}

/// The result of one run.
#[derive(Debug)]
pub struct RunOutcome {
    pub result: Result<Dynamic, ScriptFailure>,
    pub stats: RunStats,
    pub elapsed: Duration,
}

/// Run `source` on `engine` under `limits` with `constants` visible (read-only) to the script,
/// stopped by `control.cancel` and printing into `control.tap` too when given.
///
/// Runs on the calling thread (state is per thread, see [`crate::state`]), on a stack of its
/// own of [`run_stack_bytes`]. The value (or thrown value) it returns must be given back to
/// [`release_outcome`] (or [`reclaim::release`]) once used, never simply dropped.
pub fn run_script(
    engine: &Engine,
    cache: &ScriptCache,
    limits: &Limits,
    source: &str,
    constants: HashMap<String, Dynamic>,
    max_value_depth: usize,
    control: RunControl,
) -> RunOutcome {
    stacker::grow(run_stack_bytes(limits), || {
        let mut outcome = run_on_this_stack(engine, cache, limits, source, constants, control);
        // Values nested deeper than the caller can convert are refused here: walking a
        // 10,000-deep array recurses 10,000 times.
        match &mut outcome.result {
            Ok(value) if nested_deeper_than(value, max_value_depth) => {
                reclaim::release(std::mem::take(value));
                outcome.result = Err(ScriptFailure::new(
                    ErrorKind::Runtime,
                    format!(
                        "cannot return the script's value: value is nested deeper than max_value_depth ({max_value_depth})"
                    ),
                    Position::NONE,
                ));
            }
            Err(failure)
                if failure.thrown.as_ref().is_some_and(|v| nested_deeper_than(v, max_value_depth)) =>
            {
                reclaim::release_all(failure.thrown.take().into_iter().collect());
            }
            _ => {}
        }
        outcome
    })
}

/// Does `value` have more than `levels` levels of nested arrays/maps?
pub fn nested_deeper_than(value: &Dynamic, levels: usize) -> bool {
    if let Some(arr) = value.read_lock::<Array>() {
        return levels == 0 || arr.iter().any(|v| nested_deeper_than(v, levels - 1));
    }
    if let Some(map) = value.read_lock::<Map>() {
        return levels == 0 || map.values().any(|v| nested_deeper_than(v, levels - 1));
    }
    false
}

fn run_on_this_stack(
    engine: &Engine,
    cache: &ScriptCache,
    limits: &Limits,
    source: &str,
    constants: HashMap<String, Dynamic>,
    control: RunControl,
) -> RunOutcome {
    let start = Instant::now();
    if source.len() > limits.max_source_size {
        let failure = ScriptFailure::new(
            ErrorKind::SourceSize,
            format!(
                "script is {} bytes, more than max_source_size ({})",
                source.len(),
                limits.max_source_size
            ),
            Position::NONE,
        );
        return RunOutcome { result: Err(failure), stats: RunStats::default(), elapsed: start.elapsed() };
    }
    let deadline = start.checked_add(Duration::from_millis(limits.timeout_ms));
    let scope =
        RunScope::enter(deadline, limits.max_output_size, limits.max_memory_bytes, constants, control);
    let result = match cache.get_or_compile(engine, source) {
        Err(err) => Err(ScriptFailure::from_parse_error(&err)),
        Ok(ast) => {
            let mut vars = Scope::new();
            let result = engine
                .eval_ast_with_scope::<Dynamic>(&mut vars, &ast)
                .map_err(ScriptFailure::from_eval_error);
            reclaim::release_scope(vars);
            result
        }
    };
    let stats = scope.finish();
    RunOutcome { result, stats, elapsed: start.elapsed() }
}

/// Below this, what a run holds after its release is noise (a compiled script kept in the
/// cache, interned strings), not a leak.
pub const LEFT_BEHIND_NOISE_BYTES: usize = 4 * 1024 * 1024;

/// Release what a used outcome still holds (its value or thrown value), without recursion,
/// and give the memory back to the system after a run that held a lot. Returns the bytes the
/// run left behind (reference cycles), also added to [`memory::left_behind_bytes`].
pub fn release_outcome(result: Result<Dynamic, ScriptFailure>, stats: &RunStats) -> usize {
    let account = memory::begin();
    match result {
        Ok(value) => reclaim::release(value),
        Err(failure) => reclaim::release_all(failure.thrown.into_iter().collect()),
    }
    let freed = memory::end(account).net.min(0).unsigned_abs();
    if stats.peak_memory > RELEASE_TO_OS_ABOVE_BYTES {
        memory::release_to_os();
    }
    let left_behind = stats.held_at_end.saturating_sub(freed);
    if left_behind < LEFT_BEHIND_NOISE_BYTES {
        return 0;
    }
    memory::note_left_behind(left_behind);
    left_behind
}
