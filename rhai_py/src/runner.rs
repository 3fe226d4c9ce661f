//! Running one script: source-size check, cache, per-run state, stack guarantee, timing.

use rhai::{Array, Dynamic, Engine, Map, Position, Scope};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cache::ScriptCache;
use crate::errors::{ErrorKind, ScriptFailure};
use crate::limits::Limits;
use crate::state::{RunScope, RunStats};

/// Every run starts with at least this much stack; if the calling thread has less left
/// (small thread stacks), the run is moved to a fresh stack of [`RUN_STACK_SIZE`].
pub const MIN_STACK_FOR_RUN: usize = 4 * 1024 * 1024;
/// Size of the stack allocated for a run when the thread's own is too small.
pub const RUN_STACK_SIZE: usize = 16 * 1024 * 1024;

/// The result of one run.
#[derive(Debug)]
pub struct RunOutcome {
    pub result: Result<Dynamic, ScriptFailure>,
    pub stats: RunStats,
    pub elapsed: Duration,
}

/// Run `source` on `engine` under `limits` with `constants` visible (read-only) to the script.
///
/// Runs on the calling thread (state is per thread, see [`crate::state`]), on a stack with at
/// least [`MIN_STACK_FOR_RUN`] bytes available.
pub fn run_script(
    engine: &Engine,
    cache: &ScriptCache,
    limits: &Limits,
    source: &str,
    constants: HashMap<String, Dynamic>,
    max_value_depth: usize,
) -> RunOutcome {
    stacker::maybe_grow(MIN_STACK_FOR_RUN, RUN_STACK_SIZE, || {
        let mut outcome = run_on_this_stack(engine, cache, limits, source, constants);
        // Values nested deeper than the caller can convert are refused (and dropped) here, on
        // the guaranteed stack: dropping or walking a 10,000-deep array recurses 10,000 times.
        match &mut outcome.result {
            Ok(value) if nested_deeper_than(value, max_value_depth) => {
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
                failure.thrown = None;
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
    let scope = RunScope::enter(deadline, limits.max_output_size, constants);
    let result = match cache.get_or_compile(engine, source) {
        Err(err) => Err(ScriptFailure::from_parse_error(&err)),
        Ok(ast) => {
            let mut vars = Scope::new();
            engine.eval_ast_with_scope::<Dynamic>(&mut vars, &ast).map_err(ScriptFailure::from_eval_error)
        }
    };
    let stats = scope.finish();
    RunOutcome { result, stats, elapsed: start.elapsed() }
}
