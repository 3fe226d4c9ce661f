//! Building the sandboxed `rhai::Engine` from [`Limits`]: chosen packages, no module loading,
//! no `eval`, no `sleep`, no time source, output captured per run, every limit set explicitly.

use rhai::module_resolvers::DummyModuleResolver;
use rhai::packages::{Package, StandardPackage};
use rhai::{Dynamic, Engine, EvalAltResult, OptimizationLevel, Position, FLOAT, INT};

use crate::errors::Termination;
use crate::limits::Limits;
use crate::state;

/// Message of the error raised by the sandboxed `sleep`.
pub const SLEEP_DENIED: &str = "sleep() is disabled in this sandbox";

fn denied(message: &str) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(Termination::Denied(message.into())), Position::NONE).into()
}

/// Build an engine with the sandbox and `limits` applied (no host functions yet).
///
/// * packages: `StandardPackage` only (built with `no_time`, so there is no `timestamp()`);
/// * `import` is a disabled keyword (and would find nothing: `DummyModuleResolver`, 0 modules);
/// * `eval` is a disabled keyword; `sleep` raises an error (uncatchable) instead of blocking;
/// * `print`/`debug` go to the per-run log, never to stdout;
/// * constants given to a run are resolved by `on_var`, also inside script functions;
/// * `on_progress` records the operation count and enforces the deadline and stack guard.
pub fn build_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine.set_module_resolver(DummyModuleResolver::new());
    engine.set_optimization_level(OptimizationLevel::Simple);
    engine.disable_symbol("eval");
    // `import` is refused when compiling (clear message); the dummy resolver and a module
    // limit of 0 stay as a second line of defence.
    engine.disable_symbol("import");

    // Every limit explicitly: Rhai's defaults differ between debug and release builds.
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.set_max_variables(limits.max_variables);
    engine.set_max_functions(limits.max_functions);
    engine.set_max_modules(0);

    engine.on_print(state::push_log);
    engine.on_debug(|text, _source, _pos| state::push_log(text));
    engine.on_progress(state::on_progress);
    #[allow(deprecated)] // "volatile" API, not deprecated
    engine.on_var(|name, index, ctx| {
        if index > 0 {
            return Ok(None); // a local variable resolved at compile time
        }
        match state::constant(name) {
            Some(value) if !ctx.scope().contains(name) => Ok(Some(value)),
            _ => Ok(None),
        }
    });

    // Functions in the engine's own namespace take precedence over the packages'.
    engine.register_fn("sleep", |_: INT| -> Result<(), Box<EvalAltResult>> { Err(denied(SLEEP_DENIED)) });
    engine.register_fn("sleep", |_: FLOAT| -> Result<(), Box<EvalAltResult>> { Err(denied(SLEEP_DENIED)) });
    engine
}
